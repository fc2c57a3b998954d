"""The outbox's pure decisions, one small module each (as GoAlert's engine/message):
what an outbox entry is (:mod:`.item`), which SMS leave together (:mod:`.bundle`),
when a number is held back (:mod:`.throttle`), how long a retry waits
(:mod:`.backoff`) and what a provider's delivery report means (:mod:`.outcomes`)."""
