"""Gas City (the ``gc`` command): a city's orders as gtui's plugins.

gtui runs a city's orders as it runs Gas Town's plugins: found, gated,
dispatched to the kennel's dogs, recorded on the ledger, shown in the
control room.  Everything Gas City-specific lives here; docs/gascity.md says
what maps to what and what differs on purpose.
"""
