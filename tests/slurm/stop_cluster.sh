#!/usr/bin/env bash
# Stop the cluster that tests/slurm/start_cluster.sh STATE_DIR started: exactly the PIDs it recorded in
# STATE_DIR/pids/, newest first (slurmd, slurmctld, slurmdbd, mariadbd, munged). Nothing is killed by name.
#
#   tests/slurm/stop_cluster.sh STATE_DIR
set -uo pipefail

STATE=$(realpath -m "${1:?usage: stop_cluster.sh STATE_DIR}")
export SLURM_CONF=$STATE/slurm.conf

# alive PID NAME: the PID is running and is still the daemon we started (not a reused PID).
alive() { [[ -d /proc/$1 ]] && grep -q "$2" "/proc/$1/cmdline" 2>/dev/null; }

# Jobs still in this cluster (a failed or interrupted run) are cancelled first, so that no job outlives its
# slurmd. scancel and squeue talk only to this cluster's slurmctld, and only while it runs.
ctld=$(cat "$STATE"/pids/*-slurmctld.pid 2>/dev/null)
if [[ -n $ctld ]] && alive "$ctld" slurmctld; then
  timeout 10 scancel --user="$(id -un)" 2>/dev/null
  for _ in $(seq 50); do
    [[ -z $(timeout 5 squeue --noheader 2>/dev/null) ]] && break
    sleep 0.2
  done
fi

for pidfile in $(ls -r "$STATE"/pids/*.pid 2>/dev/null); do
  pid=$(<"$pidfile")
  name=$(basename "$pidfile" .pid); name=${name#*-}
  if alive "$pid" "$name"; then
    kill -TERM "$pid"
    # Up to 20 s to shut down cleanly (MariaDB flushes), then SIGKILL.
    for _ in $(seq 100); do alive "$pid" "$name" || break; sleep 0.2; done
    if alive "$pid" "$name"; then
      echo "$name ($pid) ignored SIGTERM: killing it" >&2
      kill -KILL "$pid"
    fi
  fi
done
echo "SLURM cluster in $STATE stopped"
