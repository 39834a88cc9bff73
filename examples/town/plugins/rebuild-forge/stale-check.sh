#!/usr/bin/env bash
# Condition gate of rebuild-forge: is the installed forge behind its repository's main?
# `gtui stale forge --quiet` decides, by exit status (Gas Town's convention):
#   0 stale (or not built yet)  -> exit 0, the gate opens
#   1 fresh                     -> exit 1, the gate stays closed
#   2 error (no repo, ...)      -> exit 2, the gate stays closed
# --quiet prints nothing, so the reason (the first line printed) comes from here:
# "fresh" when fresh, otherwise gtui stale's own words, which say why.
gtui stale forge --quiet
status=$?
if [[ $status -eq 1 ]]; then
  echo "fresh"
else
  # e.g. "stale: forge is 1 commit(s) behind; safe to rebuild" or "forge: error: repository ... does not exist ...".
  # Output to a pipe is wrapped at 160 columns: join the lines back into one reason.
  reason="$(gtui stale forge 2>&1 | tr -s ' \n' '  ')"
  echo "${reason% }"
fi
exit "$status"
