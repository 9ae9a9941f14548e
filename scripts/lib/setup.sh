# Shared set-up for Loom's scripts: system packages and the build.
# Source it from a script that has already cd'ed to the repository root.

# Installs the Debian packages Loom builds against (zlib for gzip and bgzip FASTA; OpenBLAS, which it loads at run time),
# when any is missing.
loom_system_packages() {
    loom_apt_install libzmq3-dev libopenblas0-pthread libssl-dev zlib1g-dev pkg-config
}

# Installs what the cluster tests need: ip (iproute2) for network namespaces and veth pairs,
# nft (nftables) to drop packets between them, and Debian's Slurm 22.05 and munge for the real
# two-node Slurm cluster the deploy/slurm tests start (as children: no systemd), and
# prometheus_client, whose parser reads what --metrics serves.
loom_test_packages() {
    loom_apt_install iproute2 nftables slurmctld slurmd slurm-client munge python3-prometheus-client
}

# Installs the named Debian packages that are missing, with apt-get.
loom_apt_install() {
    local need=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
    done
    if [ ${#need[@]} -gt 0 ]; then
        echo "loom: installing ${need[*]} with apt-get" >&2
        local sudo=""
        [ "$(id -u)" -ne 0 ] && sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
    fi
}

# Makes sure python3 has numpy (for the conformance checker).
loom_python_numpy() {
    if ! python3 -c "import numpy" >/dev/null 2>&1; then
        echo "loom: installing numpy for python3" >&2
        python3 -m pip install -q numpy || { dpkg -s python3-numpy >/dev/null 2>&1 || apt-get install -y -qq python3-numpy >/dev/null; }
    fi
}

# Runs `swift build` with the given arguments, saying what it builds and how far it has got: the
# first build takes 2–3 minutes, and a silent terminal looks like a hang. On a terminal the
# `[step/steps]` count is redrawn on one line; otherwise a line is printed at each quarter.
# Compiler errors are printed whole. Fails if the build fails.
loom_swift_build() {
    local what="$1"; shift
    echo "loom: building $what (a first build takes 2-3 minutes)" >&2
    local tty=0 errexit=0
    [ -t 2 ] && tty=1
    [[ $- == *e* ]] && errexit=1
    set +e
    swift build "$@" 2>&1 | awk -v tty="$tty" '
        /error:/ { print > "/dev/stderr"; failed = 1; next }
        match($0, /^\[[0-9]+\/[0-9]+\]/) {
            split(substr($0, 2, RLENGTH - 2), p, "/")
            # A new phase (plugins, then the build) counts anew; phases of a few steps are not shown.
            # (The total grows as the build finds more to do: each quarter is shown once a phase.)
            if (p[1] + 0 < prev + 0) last = 0
            prev = p[1]
            if (p[2] < 10) next
            if (tty) { printf "\r  [%d/%d] %s", p[1], p[2], substr($0, RLENGTH + 2, 60) > "/dev/stderr"; shown = 1 }
            else { q = int(4 * p[1] / p[2]); if (q > last) { last = q; printf "  %d%% (%d/%d)\n", 25 * q, p[1], p[2] > "/dev/stderr" } }
        }
        END { if (shown) printf "\r%80s\r", "" > "/dev/stderr" }'
    local status=${PIPESTATUS[0]}
    [ "$errexit" -eq 1 ] && set -e
    [ "$status" -eq 0 ] || { echo "loom: building $what failed (swift build exit $status)" >&2; return 1; }
}

# Builds the release binary, .build/release/loom, with the Swift runtime and Foundation linked in
# statically: every loom process (coordinator, each worker) starts without resolving thousands
# of symbols in the Swift shared libraries, and the binary runs on cluster nodes that have no
# Swift toolchain (it needs only the Debian libraries above, each loaded when first needed).
loom_build_release() {
    loom_swift_build "the release binary, .build/release/loom" -c release --product loom --static-swift-stdlib
    [ -x .build/release/loom ] || { echo "loom did not build" >&2; return 1; }
}
