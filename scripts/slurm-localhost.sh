#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for trying `rankprobe slurm` and for the
# tests: Debian's Slurm 22.05 (installed with apt-get if missing; needs root), a
# configuration under a temporary directory, and munged, slurmctld and slurmd started
# and stopped by PID. No systemd needed.
#
#   scripts/slurm-localhost.sh up      # prints `export SLURM_CONF=...`; eval it
#   scripts/slurm-localhost.sh down
#
# State lives in $RANKPROBE_SLURM_DIR (default /tmp/rankprobe-slurm). The node has the
# machine's CPUs, one partition `debug` (default) and a `high` partition on the same node
# that preempts it (PreemptMode=REQUEUE, with 30 s of GraceTime: SIGTERM, then SIGKILL),
# so preemption can be tried too. A requeued task may start again after 10 s.
set -euo pipefail

dir="${RANKPROBE_SLURM_DIR:-/tmp/rankprobe-slurm}"
conf="$dir/slurm.conf"

say() { echo "slurm-localhost: $*" >&2; }

install_if_missing() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
        && command -v sbatch >/dev/null && command -v munged >/dev/null; then
        return
    fi
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        say "Slurm is not installed and cannot be installed here (needs root and apt-get)"
        exit 3
    fi
    say "installing slurmctld slurmd slurm-client munge"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurmctld slurmd slurm-client munge \
        >"$dir/apt.log" 2>&1 || {
        # The package lists may be missing on a fresh machine.
        DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$dir/apt.log" 2>&1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurmctld slurmd slurm-client munge \
            >>"$dir/apt.log" 2>&1
    } || { say "apt-get failed; see $dir/apt.log"; exit 3; }
}

alive() { [ -f "$dir/$1.pid" ] && kill -0 "$(cat "$dir/$1.pid")" 2>/dev/null; }

down() {
    for daemon in slurmd slurmctld munged; do
        if alive "$daemon"; then
            kill "$(cat "$dir/$daemon.pid")" 2>/dev/null || true
        fi
    done
    for daemon in slurmd slurmctld munged; do
        for _ in $(seq 50); do alive "$daemon" || break; sleep 0.1; done
        if alive "$daemon"; then kill -9 "$(cat "$dir/$daemon.pid")" 2>/dev/null || true; fi
        rm -f "$dir/$daemon.pid"
    done
    say "stopped"
}

up() {
    mkdir -p "$dir"
    install_if_missing
    down 2>/dev/null || true
    mkdir -p "$dir/spool/ctld" "$dir/spool/d" "$dir/munge/run" "$dir/log"
    local host cpus user
    host="$(hostname -s)"
    cpus="$(nproc)"
    user="$(id -un)"
    cat >"$conf" <<EOF
ClusterName=rankprobe
SlurmctldHost=$host
SlurmUser=$user
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobRequeue=1
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=defer_batch=0
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
KillWait=30
MinJobAge=300
StateSaveLocation=$dir/spool/ctld
SlurmdSpoolDir=$dir/spool/d
SlurmctldPidFile=$dir/slurmctld.pidfile
SlurmdPidFile=$dir/slurmd.pidfile
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldPort=16817
SlurmdPort=16818
NodeName=$host CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP PriorityTier=1 GraceTime=30
PartitionName=high Nodes=$host MaxTime=INFINITE State=UP PriorityTier=2 PreemptMode=OFF
EOF
    # munge: a fresh key, a private socket.
    dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$dir/munge/munge.key"
    chmod 700 "$dir/munge"
    local socket="$dir/munge/run/munge.socket.2"
    munged --foreground --force --key-file="$dir/munge/munge.key" --socket="$socket" \
        --pid-file="$dir/munge/munged.pid" --log-file="$dir/log/munged.log" \
        --seed-file="$dir/munge/munge.seed" >"$dir/log/munged.out" 2>&1 &
    echo $! >"$dir/munged.pid"
    # Slurm finds munge's socket through its auth plugin option. cred_expire is also how
    # long a requeued job waits before it may start again (default 120 s): 10 s here.
    echo "AuthInfo=socket=$socket,cred_expire=10" >>"$conf"
    export SLURM_CONF="$conf"
    slurmctld -D -i -f "$conf" >"$dir/log/slurmctld.out" 2>&1 &
    echo $! >"$dir/slurmctld.pid"
    slurmd -D -f "$conf" >"$dir/log/slurmd.out" 2>&1 &
    echo $! >"$dir/slurmd.pid"
    for _ in $(seq 100); do
        if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
            say "up: node $host with $cpus CPUs (logs in $dir/log)"
            echo "export SLURM_CONF=$conf"
            return
        fi
        sleep 0.2
    done
    say "the cluster did not come up; logs in $dir/log:"
    tail -n 5 "$dir"/log/*.log "$dir"/log/*.out >&2 || true
    down
    exit 1
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
