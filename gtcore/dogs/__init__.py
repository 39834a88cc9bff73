"""Dogs and the kennel: child processes, the runner, run output, the dogs' pool, the kennel (its lock, socket,
queue and thin answers), its door for thin commands, and the recovery journal of results the ledger refused."""
