"""The leaves every other part stands on: the Record base, errors, events, time, durations, safe text, digests,
small state files, and the ledger's vocabulary (beads, results, severities).  They import nothing else of gtcore."""
