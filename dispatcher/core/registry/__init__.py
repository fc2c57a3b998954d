"""The registry: residents, devices, staff, areas and service providers as records
that are changed one at a time (``records``), the rules a change must keep
(``rules``) and what the audit keeps of it (``audit``). Pure: no I/O."""
