#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for td-hpc's real-SLURM tests (no systemd, no accounting).
#
#   scripts/slurm_cluster.sh start    # install slurm-wlm + munge when missing (root + apt), write the config,
#                                     # start munged, slurmctld, slurmd, wait until the node is idle
#   scripts/slurm_cluster.sh status   # daemons and sinfo
#   scripts/slurm_cluster.sh stop     # kill exactly the PIDs that start recorded
#   scripts/slurm_cluster.sh env      # print `export SLURM_CONF=...` for the SLURM commands
#   scripts/slurm_cluster.sh logs DEST [N]  # copy the daemon logs, slurm.conf and jobcomp.txt into DEST and
#                                     # print the last N (60) lines of each log (for a failed test)
#
# Everything lives under $TD_SLURM_DIR (default /tmp/td-slurm): slurm.conf, the munge key and socket,
# state, spool, logs, the job-completion log (jobcomp.txt) and the recorded PIDs (pids). SLURM commands
# need SLURM_CONF=$TD_SLURM_DIR/slurm.conf (see `env`); TD_SLURM_CTLD_PORT / TD_SLURM_D_PORT (6817 / 6818)
# move the daemons' ports. Exit status 3 from start: cannot run here (not
# root, or no apt-get to install the daemons); the message says which.
set -euo pipefail

RUN_DIR="${TD_SLURM_DIR:-/tmp/td-slurm}"
CONF="$RUN_DIR/slurm.conf"
PIDS="$RUN_DIR/pids"
NODE="$(hostname -s)"
CPUS="$(nproc)"
MUNGE_SOCKET="$RUN_DIR/munge/munge.socket.2"
export SLURM_CONF="$CONF"

log() { echo "slurm_cluster: $*" >&2; }

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
        && command -v sbatch >/dev/null; then
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        log "slurm-wlm/munge are missing and this is not root, so they cannot be installed"
        exit 3
    fi
    if ! command -v apt-get >/dev/null; then
        log "slurm-wlm/munge are missing and there is no apt-get here"
        exit 3
    fi
    local start=$SECONDS apt_log
    apt_log="$(mktemp)"
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get install -y --no-install-recommends slurm-wlm munge >"$apt_log" 2>&1 \
        || { apt-get update >>"$apt_log" 2>&1 \
             && apt-get install -y --no-install-recommends slurm-wlm munge >>"$apt_log" 2>&1; }; }; then
        tail -n 20 "$apt_log" >&2
        rm -f "$apt_log"
        log "apt-get install slurm-wlm munge failed"
        exit 3
    fi
    rm -f "$apt_log"
    log "installed slurm-wlm and munge in $((SECONDS - start)) s"
}

write_config() {
    mkdir -p "$RUN_DIR"/{state,spool,log,munge}
    chmod 700 "$RUN_DIR/munge"
    if [ ! -s "$RUN_DIR/munge/munge.key" ]; then
        dd if=/dev/urandom of="$RUN_DIR/munge/munge.key" bs=1024 count=1 status=none
    fi
    chmod 400 "$RUN_DIR/munge/munge.key"
    local mem
    mem=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) * 8 / 10 ))  # MiB; leave 20 % to the OS
    cat >"$CONF" <<CONF
# One-node test cluster written by scripts/slurm_cluster.sh; no accounting, file job-completion log.
ClusterName=td-test
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire: how long slurmd holds a revoked job credential and so how long a requeued job waits before it
# may start again (SLURM sets its BeginTime to now + cred_expire + 1; default 120 s, minimum 5). Starting
# it earlier (scontrol update StartTime=now) races that guard: a credential issued in the same second as the
# revocation is refused ("Job credential revoked") and the requeued job ends FAILED.
AuthInfo=socket=$MUNGE_SOCKET,cred_expire=20
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$RUN_DIR/jobcomp.txt
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
StateSaveLocation=$RUN_DIR/state
SlurmdSpoolDir=$RUN_DIR/spool
SlurmctldPidFile=$RUN_DIR/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd.pid
SlurmctldLogFile=$RUN_DIR/log/slurmctld.log
SlurmdLogFile=$RUN_DIR/log/slurmd.log
SlurmctldDebug=debug
SlurmdDebug=debug
SlurmctldPort=${TD_SLURM_CTLD_PORT:-6817}
SlurmdPort=${TD_SLURM_D_PORT:-6818}
ReturnToService=2
MinJobAge=900
KillWait=30
SchedulerParameters=sched_interval=2
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
}

running() { [ -f "$PIDS" ] && while read -r _ pid; do kill -0 "$pid" 2>/dev/null || return 1; done <"$PIDS"; }

start() {
    if running; then
        log "already running ($(tr '\n' ' ' <"$PIDS"))"
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        log "must run as root (the daemons run as root here)"
        exit 3
    fi
    install_packages
    write_config
    : >"$PIDS"
    munged --force --key-file="$RUN_DIR/munge/munge.key" --socket="$MUNGE_SOCKET" \
        --pid-file="$RUN_DIR/munged.pid" --log-file="$RUN_DIR/log/munged.log" --seed-file="$RUN_DIR/munge/seed"
    echo "munged $(cat "$RUN_DIR/munged.pid")" >>"$PIDS"
    slurmctld -c -f "$CONF"     # -c: start from an empty state
    slurmd -f "$CONF"
    local i
    for i in $(seq 1 50); do
        [ -s "$RUN_DIR/slurmctld.pid" ] && [ -s "$RUN_DIR/slurmd.pid" ] && break
        sleep 0.2
    done
    echo "slurmctld $(cat "$RUN_DIR/slurmctld.pid")" >>"$PIDS"
    echo "slurmd $(cat "$RUN_DIR/slurmd.pid")" >>"$PIDS"
    for i in $(seq 1 60); do
        if ! running; then  # a daemon died (a port already taken, a bad config): say so now, not after sinfo's retries
            log "a daemon exited while starting ($(tr '\n' ' ' <"$PIDS")); logs in $RUN_DIR/log"
            tail -n 20 "$RUN_DIR/log/slurmctld.log" "$RUN_DIR/log/slurmd.log" >&2 || true
            exit 1
        fi
        if [ "$(timeout 10 sinfo -h -n "$NODE" -o %t 2>/dev/null)" = "idle" ]; then
            log "node $NODE idle after ${i}x0.5 s; $(tr '\n' ' ' <"$PIDS"); export SLURM_CONF=$CONF"
            return 0
        fi
        sleep 0.5
    done
    log "node $NODE did not become idle; logs in $RUN_DIR/log"
    timeout 10 sinfo -N -l >&2 || true
    tail -n 20 "$RUN_DIR/log/slurmctld.log" "$RUN_DIR/log/slurmd.log" >&2 || true
    exit 1
}

stop() {
    [ -f "$PIDS" ] || { log "not running (no $PIDS)"; return 0; }
    local name pid
    # slurmd first, munged last: stop exactly the recorded PIDs, nothing found by name.
    for name in slurmd slurmctld munged; do
        pid="$(awk -v n="$name" '$1 == n {print $2}' "$PIDS")"
        [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    done
    for _ in $(seq 1 50); do
        local alive=0
        while read -r _ pid; do kill -0 "$pid" 2>/dev/null && alive=1; done <"$PIDS"
        [ "$alive" = 0 ] && break
        sleep 0.2
    done
    while read -r name pid; do
        if kill -0 "$pid" 2>/dev/null; then log "$name ($pid) ignored SIGTERM; SIGKILL"; kill -9 "$pid" || true; fi
    done <"$PIDS"
    rm -f "$PIDS"
    log "stopped"
}

status() {
    if running; then
        log "running: $(tr '\n' ' ' <"$PIDS")"
        sinfo
    else
        log "not running"
        return 1
    fi
}

logs() {
    local dest="${1:?usage: $0 logs DEST [N]}" lines="${2:-60}" f
    mkdir -p "$dest"
    for f in "$RUN_DIR"/log/*.log "$CONF" "$RUN_DIR/jobcomp.txt"; do
        [ -f "$f" ] && cp -p "$f" "$dest/"
    done
    for f in "$RUN_DIR"/log/slurmctld.log "$RUN_DIR"/log/slurmd.log; do
        [ -f "$f" ] || continue
        echo "===== last $lines lines of $f (copied to $dest) ====="
        tail -n "$lines" "$f"
    done
}

case "${1:-}" in
    start) start ;;
    logs) shift; logs "$@" ;;
    stop) stop ;;
    status) status ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    *) echo "usage: $0 start|stop|status|env|logs DEST [N]" >&2; exit 2 ;;
esac
