#!/usr/bin/env bash
# A SLURM cluster on this machine, for tests and for trying the jobscripts before a real cluster:
# one node (this host, its real CPUs and memory), one partition `debug`, requeue allowed.
#
#   tools/slurm_localhost.sh start     # installs munge + SLURM from the distribution if missing (root or sudo)
#   PBAHPC_SLURM_NODES=2 tools/slurm_localhost.sh start
#                                      # 2 nodes on this host (one slurmd each), sharing its CPUs and memory:
#                                      # multi-node jobs and node sweeps (jobscripts/scaling.sh) become real
#   tools/slurm_localhost.sh status    # exit 0 when the node takes jobs
#   tools/slurm_localhost.sh stop      # cancels the cluster's jobs, stops the daemons this script started
#
# Everything lives in $PBAHPC_SLURM_DIR (default /var/tmp/pbahpc-slurm): slurm.conf, state, spool,
# logs. Clients find the cluster with  export SLURM_CONF=$PBAHPC_SLURM_DIR/slurm.conf  (jobs inherit it).
# Idempotent: start on a running cluster only checks it; stop on a stopped one does nothing. A munged
# that was running before start (the system's) is used and left running.
set -euo pipefail

dir=${PBAHPC_SLURM_DIR:-/var/tmp/pbahpc-slurm}
nodes=${PBAHPC_SLURM_NODES:-1}
conf=$dir/slurm.conf
export SLURM_CONF=$conf
say() { printf '[slurm-localhost] %s\n' "$*" >&2; }
sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo"
alive() { local pid; pid=$(cat "$1" 2>/dev/null) && $sudo_ kill -0 "$pid" 2>/dev/null; }

install() {
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null &&
        command -v munged >/dev/null && return
    command -v apt-get >/dev/null || { say "SLURM is not installed and there is no apt-get"; exit 1; }
    say "installing munge and SLURM from the distribution"
    $sudo_ apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends \
        munge slurmctld slurmd slurm-client >/dev/null
}

start_munge() {
    # the system's munged (its socket answers) serves us as it is
    if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then return; fi
    $sudo_ mkdir -p /run/munge /var/lib/munge /var/log/munge
    $sudo_ chown munge:munge /run/munge /var/lib/munge /var/log/munge
    if ! $sudo_ test -s /etc/munge/munge.key; then
        say "creating /etc/munge/munge.key"
        $sudo_ sh -c 'umask 077; dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 2>/dev/null'
        $sudo_ chown munge:munge /etc/munge/munge.key
    fi
    $sudo_ runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
    $sudo_ cp /run/munge/munged.pid "$dir/munged.pid"   # ours: stop ends it
}

write_conf() {
    local host cpus mem
    host=$(hostname -s)
    [[ $nodes =~ ^[1-9][0-9]*$ ]] || { say "PBAHPC_SLURM_NODES=$nodes: a node count >= 1 is allowed"; exit 2; }
    # the node as slurmd sees it: CPUs, sockets, cores, threads, RealMemory (MiB)
    read -r cpus mem < <(slurmd -C | awk '/^NodeName/{for (i = 2; i <= NF; i++) {split($i, kv, "=");
        v[kv[1]] = kv[2]} print v["CPUs"], v["RealMemory"]}')
    cat >"$conf.new" <<EOF
# written by tools/slurm_localhost.sh
# nodes=$nodes
ClusterName=pbahpc-localhost
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmctldPort=6817
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool-%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd-%n.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=pmi2   # what the mpich wheel's ranks speak (pmix is not built for this MPI); sites set theirs
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2   # a small cluster: start pending (requeued) jobs promptly
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobRequeue=1
ReturnToService=2
InactiveLimit=0
KillWait=10
AuthInfo=cred_expire=10   # also how long a requeued job waits before it may start again (default 120 s)
MinJobAge=3600
SlurmdTimeout=60
NodeName=node[1-$nodes] NodeHostname=$host NodeAddr=127.0.0.1 Port=$((17000 + 1))-$((17000 + nodes)) CPUs=$(( cpus / nodes > 0 ? cpus / nodes : 1 )) RealMemory=$(( mem / nodes )) State=UNKNOWN
PartitionName=debug Nodes=node[1-$nodes] Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$conf.new" "$conf"
}

slurmds() { local i; for i in $(seq "$1"); do echo "node$i"; done; }
running() {  # slurmctld and every slurmd of a cluster with $nodes nodes
    alive "$dir/slurmctld.pid" && grep -qx "# nodes=$nodes" "$conf" 2>/dev/null || return 1
    local n; for n in $(slurmds "$nodes"); do alive "$dir/slurmd-$n.pid" || return 1; done
}

start() {
    install
    running || {
        stop 2>/dev/null   # whatever ran before (another node count, a crashed daemon)
        $sudo_ mkdir -p "$dir/state"
        [ -w "$dir" ] || $sudo_ chown "$(id -u):$(id -g)" "$dir"
        start_munge
        write_conf
        $sudo_ slurmctld -f "$conf" -i   # -i: ignore any saved state
        local n; for n in $(slurmds "$nodes"); do $sudo_ slurmd -f "$conf" -N "$n"; done
    }
    local t
    for t in $(seq 60); do
        [ "$(sinfo -h -N -t idle,mix,alloc -o %N 2>/dev/null | wc -l)" = "$nodes" ] && {
            say "$nodes node(s) up: $(sinfo -h -N -o '%N %c CPUs %m MiB' | paste -sd, -); export SLURM_CONF=$conf"
            return 0; }
        sleep 1
    done
    say "the node(s) did not come up; logs: $dir/*.log"
    exit 1
}

stop() {
    local t d
    if alive "$dir/slurmctld.pid"; then
        scancel --full $(squeue -h -o %i) 2>/dev/null || true
        for t in $(seq 30); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 1; done
    fi
    for d in "$dir"/slurmd-*.pid "$dir/slurmctld.pid" "$dir/munged.pid"; do
        alive "$d" || { rm -f "$d"; continue; }
        $sudo_ kill "$(cat "$d")"
        for t in $(seq 20); do alive "$d" || break; sleep 0.5; done
        $sudo_ rm -f "$d"
    done
    # job steps left behind (none after the scancel above, unless it timed out): named, not killed
    pgrep -a -x slurmstepd >&2 && say "slurmstepd processes above are still running"
    say "stopped"
}

case ${1:-} in
    start) start;;
    stop) stop;;
    status) running;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2;;
esac
