# Shared set-up for Loom's scripts: system packages and the build.
# Source it from a script that has already cd'ed to the repository root.

# Installs the Debian packages Loom builds against (and OpenBLAS, which it loads at run time),
# when any is missing.
loom_system_packages() {
    loom_apt_install libzmq3-dev libopenblas0-pthread libssl-dev pkg-config
}

# Installs what the cluster tests need: ip (iproute2) for network namespaces and veth pairs,
# nft (nftables) to drop packets between them, and Debian's Slurm 22.05 and munge for the real
# two-node Slurm cluster the deploy/slurm tests start (as children: no systemd).
loom_test_packages() {
    loom_apt_install iproute2 nftables slurmctld slurmd slurm-client munge
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

# Builds the release binary, .build/release/loom, with the Swift runtime and Foundation linked in
# statically: every loom process (coordinator, each worker) starts without resolving thousands
# of symbols in the Swift shared libraries, and the binary runs on cluster nodes that have no
# Swift toolchain (it needs only the Debian libraries above). Prints errors only; fails if none built.
loom_build_release() {
    swift build -c release --product loom --static-swift-stdlib 2>&1 | grep -E "error:" && return 1
    [ -x .build/release/loom ] || { echo "loom did not build" >&2; return 1; }
}
