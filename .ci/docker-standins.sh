#!/usr/bin/env bash
# Local stand-ins for the two base images the Dockerfile names, for machines that reach Debian's
# package mirror but no image registry. A user with internet access never needs this: the
# Dockerfile stays exactly as it is and pulls the real images.
#
#   debian:bookworm-slim       Debian bookworm, debootstrap --variant=minbase
#   rust:1.95-slim-bookworm    the same, plus gcc, libc6-dev, ca-certificates and this machine's
#                              Rust toolchain (rustc, cargo, the x86_64 std), laid out as the
#                              official image does (RUSTUP_HOME=/usr/local/rustup,
#                              CARGO_HOME=/usr/local/cargo on PATH)
#
# The host's CA certificates (the locally added ones included) go into the rust image, so that
# cargo inside a build container reaches the crate registry through docker's NAT as the host does.
#
# Images that exist already and carry this script's label are kept (a cache between runs on one
# machine); FORCE=1 rebuilds them. Needs root, debootstrap and a running dockerd.
set -euo pipefail

RUST_VERSION=1.95
LABEL="org.gossipchain.standin=1"
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

have() {
    [ "${FORCE:-0}" != 1 ] &&
        [ "$(docker image inspect -f '{{index .Config.Labels "org.gossipchain.standin"}}' "$1" 2>/dev/null)" = 1 ]
}

# An image of the real name that is not ours (pulled by a user with internet) is never replaced.
foreign() {
    docker image inspect "$1" >/dev/null 2>&1 && ! have "$1" && [ "${FORCE:-0}" != 1 ]
}

slim=debian:bookworm-slim
rust=rust:${RUST_VERSION}-slim-bookworm
if { have "$slim" || foreign "$slim"; } && { have "$rust" || foreign "$rust"; }; then
    echo "stand-in base images present: $slim, $rust"
    exit 0
fi

command -v debootstrap >/dev/null || {
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null
}

work=$(mktemp -d /var/tmp/gossipchain-standin.XXXXXX)
cleanup() {
    # debootstrap may leave proc/sys mounted inside the root on failure.
    for m in proc sys dev/pts dev; do umount -l "$work/root/$m" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

root=$work/root
echo "debootstrap bookworm (minbase) from $MIRROR"
debootstrap --variant=minbase bookworm "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1 || {
    tail -20 "$work/debootstrap.log"
    exit 1
}
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/*

if ! have "$slim" && ! foreign "$slim"; then
    tar -C "$root" -c . | docker import \
        --change "LABEL $LABEL" --change 'CMD ["bash"]' - "$slim" >/dev/null
    echo "built $slim"
fi

if ! have "$rust" && ! foreign "$rust"; then
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    chroot "$root" apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get install -y -q --no-install-recommends \
        gcc libc6-dev ca-certificates >/dev/null
    # The host's extra CAs (for example a registry mirror's or an egress proxy's).
    if [ -d /usr/local/share/ca-certificates ]; then
        cp -a /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
        chroot "$root" update-ca-certificates >/dev/null
    fi
    chroot "$root" apt-get clean
    rm -rf "$root"/var/lib/apt/lists/*
    : >"$root/etc/resolv.conf"

    toolchain=$(dirname "$(dirname "$(rustup which rustc)")")
    host=$(rustc -vV | sed -n 's/^host: //p')
    name=$RUST_VERSION-$host
    dest=$root/usr/local/rustup/toolchains/$name
    mkdir -p "$dest/lib/rustlib" "$root/usr/local/cargo/bin"
    cp -a "$toolchain/bin" "$dest/"
    cp -a "$toolchain"/lib/lib* "$dest/lib/"
    cp -a "$toolchain/lib/rustlib/$host" "$dest/lib/rustlib/"
    [ -d "$toolchain/libexec" ] && cp -a "$toolchain/libexec" "$dest/"
    for tool in cargo rustc rustdoc; do
        ln -s "../../rustup/toolchains/$name/bin/$tool" "$root/usr/local/cargo/bin/$tool"
    done

    tar -C "$root" -c . | docker import \
        --change "LABEL $LABEL" \
        --change 'ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' - "$rust" >/dev/null
    docker run --rm --network none "$rust" sh -c 'rustc --version && cargo --version && cc --version | head -1'
    echo "built $rust"
fi
