#!/usr/bin/env bash
# Scans the finished files of a spool directory with `newterms scan --state`, oldest first, and
# prints their alerts on stdout (one JSON document per line). Meant to be run every minute or so by
# a log shipper's exec mechanism (Vector `exec` source, Fluent Bit `exec` input), which reads the
# alerts from stdout; the shipper writes the events into the spool with its own file output.
#
#   newterms-spool.sh SPOOL_DIR STATE_FILE [newterms scan options...]
#
# Environment:
#   NEWTERMS          the newterms binary (default: newterms on PATH)
#   SPOOL_CURRENT     a file name in SPOOL_DIR that the shipper keeps appending to (Fluent Bit's file
#                     output writes one fixed file): it is first renamed to a numbered batch
#   SPOOL_SETTLE_SECS a file modified less than this many seconds ago is still being written and is
#                     left for the next run (default 10)
#
# Delivery: a batch is deleted only after `newterms scan` saved the state; if the run is killed or
# fails, the batch is scanned again next time from the last saved state, and its alerts are
# raised again with the same `kibana.alert.uuid` (at-least-once: deduplicate downstream on it).
set -euo pipefail

if [[ $# -lt 2 ]]; then
    echo "usage: newterms-spool.sh SPOOL_DIR STATE_FILE [newterms scan options...]" >&2
    exit 2
fi
spool=$1
state=$2
shift 2
newterms=${NEWTERMS:-newterms}
settle=${SPOOL_SETTLE_SECS:-10}

# One run at a time: two runs over the same state would each save half of the history.
exec 9>"$state.spool-lock"
if ! flock -n 9; then
    echo "newterms-spool: a previous run still holds $state.spool-lock; skipping this one" >&2
    exit 0
fi

if [[ -n ${SPOOL_CURRENT:-} && -s $spool/$SPOOL_CURRENT ]]; then
    # The shipper opens the file for every flush, so the next flush starts a new one; a flush
    # already under way finishes into the renamed file, which the settle time waits for.
    mv "$spool/$SPOOL_CURRENT" "$spool/batch-$(date -u +%Y%m%dT%H%M%S)-$$.ndjson"
fi

now=$(date +%s)
shopt -s nullglob
for batch in "$spool"/*.ndjson "$spool"/*.ndjson.gz; do
    [[ -n ${SPOOL_CURRENT:-} && $(basename "$batch") == "$SPOOL_CURRENT" ]] && continue
    if ((now - $(stat -c %Y "$batch") < settle)); then
        continue
    fi
    # Diagnostics go to stderr: keep them out of the shipper's event stream (see the README).
    if "$newterms" scan --state "$state" "$@" "$batch"; then
        rm -f "$batch"
    else
        echo "newterms-spool: $batch not scanned; kept for the next run" >&2
        exit 1
    fi
done
