#!/usr/bin/env bash
# Start a one-node SLURM cluster on loopback, with accounting (slurmdbd + MariaDB) so that `sacct` works.
#
#   tests/slurm/start_cluster.sh STATE_DIR    then    . STATE_DIR/env.sh; sinfo
#
# Everything it writes (configs, munge key, database, spool dirs, logs) goes under STATE_DIR; ports are free
# ones picked now. There is no systemd: each daemon runs in the foreground, in the background of this script,
# and its PID goes to STATE_DIR/pids/NN-name.pid; tests/slurm/stop_cluster.sh STATE_DIR stops exactly those.
# As root it installs the Debian packages when they are missing. It returns once sinfo shows the node idle.
set -euo pipefail

STATE=$(realpath -m "${1:?usage: start_cluster.sh STATE_DIR}")
HERE=$(cd "$(dirname "$0")" && pwd)
PACKAGES=(slurm-wlm slurmdbd munge mariadb-server mariadb-client)

if ! command -v slurmctld >/dev/null || ! command -v slurmdbd >/dev/null || ! command -v munged >/dev/null \
    || ! command -v mariadbd >/dev/null; then
  [[ $(id -u) == 0 ]] || { echo "SLURM is not installed and we are not root: cannot install ${PACKAGES[*]}" >&2; exit 2; }
  echo "installing ${PACKAGES[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Keep the packages from starting their own munge and MariaDB services (which would outlive the test):
  # Debian's policy-rc.d hook, exit 101 = "not allowed", only for the install and only if none is there.
  (
    policy=/usr/sbin/policy-rc.d
    if [[ ! -e $policy ]]; then
      printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && trap 'rm -f "$policy"' EXIT
    fi
    apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null \
      || { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null; }
  )
fi

mkdir -p "$STATE"/{pids,run,log,slurmctld,slurmd,munge,mysql}
# munged and mariadbd run as their own users: they must reach their folders, and munged insists that every
# folder above its socket is searchable by all.
chmod 755 "$STATE"
chown munge:munge "$STATE/munge"
chown mysql:mysql "$STATE/mysql"
export SLURM_CONF=$STATE/slurm.conf

# If anything below fails, stop what was already started.
trap 'status=$?; if (( status != 0 )); then "$HERE/stop_cluster.sh" "$STATE"; fi; exit $status' EXIT

# start NAME COMMAND...: run a foreground daemon in the background, output to log/NAME.out, PID to pids/.
started=0
start() {
  local name=$1; shift
  "$@" </dev/null >"$STATE/log/$name.out" 2>&1 &
  started=$((started + 1))
  echo $! >"$STATE/pids/$(printf %02d $started)-$name.pid"
}

# wait_for WHAT COMMAND...: retry COMMAND for up to 60 s, while every daemon started lives; else show the logs.
wait_for() {
  local what=$1 pidfile; shift
  local deadline=$((SECONDS + 60))
  while ((SECONDS < deadline)); do
    if timeout 20 "$@" >/dev/null 2>&1; then return 0; fi
    for pidfile in "$STATE"/pids/*.pid; do
      kill -0 "$(<"$pidfile")" 2>/dev/null || { echo "$(basename "$pidfile" .pid) exited" >&2; break 2; }
    done
    sleep 0.2
  done
  echo "failed waiting for $what; logs:" >&2
  tail -n 20 "$STATE"/log/* >&2 || true
  return 1
}

# Four free loopback ports, chosen at once so they differ: slurmctld, slurmd, slurmdbd, MariaDB.
read -r CTLD_PORT SLURMD_PORT DBD_PORT DB_PORT < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
HOST=$(hostname -s)
CPUS=$(nproc)
# RealMemory: the machine's memory less 1 GiB for the system (slurmd drains a node that has less than this).
MEM_MB=$(awk '/^MemTotal:/ {print int($2 / 1024) - 1024}' /proc/meminfo)
DB_PASS=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')

fill() {  # fill TEMPLATE OUTPUT: replace the @NAME@ placeholders
  sed -e "s|@STATE@|$STATE|g" -e "s|@HOST@|$HOST|g" -e "s|@CPUS@|$CPUS|g" -e "s|@MEM_MB@|$MEM_MB|g" \
      -e "s|@CTLD_PORT@|$CTLD_PORT|g" -e "s|@SLURMD_PORT@|$SLURMD_PORT|g" -e "s|@DBD_PORT@|$DBD_PORT|g" \
      -e "s|@DB_PORT@|$DB_PORT|g" -e "s|@DB_PASS@|$DB_PASS|g" "$1" >"$2"
}
fill "$HERE/slurm.conf.in" "$STATE/slurm.conf"
fill "$HERE/slurmdbd.conf.in" "$STATE/slurmdbd.conf"
chmod 600 "$STATE/slurmdbd.conf"  # slurmdbd refuses a readable one (it holds the database password)

# An srun that finds this cluster. Snakemake's slurm-jobstep plugin drops every SLURM_* variable, SLURM_CONF
# too, before the srun it runs inside a job; on a real cluster srun then reads /etc/slurm/slurm.conf, which a
# test must not write. Put $STATE/bin first in PATH (the test does, env.sh does).
mkdir -p "$STATE/bin"
printf '#!/bin/sh\nSLURM_CONF=%s exec %s "$@"\n' "$SLURM_CONF" "$(command -v srun)" >"$STATE/bin/srun"
chmod 755 "$STATE/bin/srun"
printf 'export SLURM_CONF=%s PATH=%s:$PATH\n' "$SLURM_CONF" "$STATE/bin" >"$STATE/env.sh"

# munge: our own key and socket, as user munge.
mungekey --create --keyfile="$STATE/munge/munge.key"
chown munge:munge "$STATE/munge/munge.key"
start munged setpriv --reuid=munge --regid=munge --init-groups \
  munged --foreground --socket="$STATE/munge/munge.socket" --key-file="$STATE/munge/munge.key" \
  --pid-file="$STATE/munge/munged.pid" --seed-file="$STATE/munge/munged.seed" --log-file="$STATE/munge/munged.log"
wait_for munged munge --socket="$STATE/munge/munge.socket" --no-input

# MariaDB: a fresh data folder, listening on 127.0.0.1 only, and a password user for slurmdbd.
mariadb-install-db --no-defaults --user=mysql --datadir="$STATE/mysql/data" --skip-test-db \
  --auth-root-authentication-method=socket >"$STATE/log/mariadb-install-db.out" 2>&1
start mariadbd mariadbd --no-defaults --user=mysql --datadir="$STATE/mysql/data" \
  --socket="$STATE/mysql/mysqld.sock" --pid-file="$STATE/mysql/mysqld.pid" --log-error="$STATE/mysql/error.log" \
  --bind-address=127.0.0.1 --port="$DB_PORT" --innodb-buffer-pool-size=64M --innodb-log-file-size=16M
SQL=(mariadb --no-defaults --socket="$STATE/mysql/mysqld.sock" --user=root)  # root by socket: we are root
wait_for mariadbd "${SQL[@]}" -e "SELECT 1"
"${SQL[@]}" -e "CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"

# slurmdbd, then the cluster, an account and this user in it, before slurmctld registers.
start slurmdbd slurmdbd -D  # reads slurmdbd.conf beside $SLURM_CONF
wait_for slurmdbd sacctmgr --noheader show cluster
sacctmgr -i add cluster rrhftest >/dev/null
sacctmgr -i add account rrhf Description="rrhf-workflow tests" Organization=rrhf >/dev/null
sacctmgr -i add user "$(id -un)" DefaultAccount=rrhf >/dev/null

start slurmctld slurmctld -D -i
start slurmd slurmd -D
# Ready when the controller answers and the node is idle.
wait_for "the node to be idle" bash -c '[[ $(sinfo --noheader --format=%t) == idle ]]'
echo "SLURM cluster up: . $STATE/env.sh to use it"
