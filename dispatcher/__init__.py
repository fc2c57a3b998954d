"""Eldercall: the call-dispatch daemon of a home-care call command centre."""
