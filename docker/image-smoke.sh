#!/bin/bash
# Build and smoke-test the project's Dockerfile with podman, no Docker Hub, no daemon.
# Usage, from the project root: bash docker/image-smoke.sh   (W=work dir, CTX=build context, DF=Dockerfile, PORT=host port)
# Builds a local stand-in for python:3.11-slim from Debian bookworm (no container registry
# is reachable here), builds the Dockerfile with podman (no daemon), runs the image, and
# checks /readyz, /predict, /metrics, the healthcheck, the user, the absence of torch and a
# clean stop. Needs root and: apt-get install -y podman debootstrap. About 2 min the first
# time, 1 min after (the stand-in base is kept in $W).
set -euo pipefail
W=${W:-${XDG_CACHE_HOME:-$HOME/.cache}/image-smoke}; CTX=${CTX:-$(pwd)}; DF=${DF:-$CTX/Dockerfile}; PORT=${PORT:-38000}
# The Debian mirror this machine's apt already uses.
MIRROR=${MIRROR:-$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null)}
[ -n "$MIRROR" ] || MIRROR=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list)
PM="podman --root $W/storage --runroot $W/run"
RUNOPTS="--runtime $W/runc/usr/sbin/runc --ulimit nofile=20000:20000 --ulimit nproc=4096:4096"
NAME=textclf-ci-$$
mkdir -p "$W"
cleanup() {
  mountpoint -q "$W/rootfs/proc" && umount "$W/rootfs/proc" || true
  $PM rm -f "$NAME" >/dev/null 2>&1 || true
}
trap cleanup EXIT
t() { local s=$SECONDS; "$@"; echo "## $1 ... took $((SECONDS - s))s" >&2; }

# 1. Local stand-in for python:3.11-slim (Debian bookworm's python3 is 3.11).
if ! $PM image exists docker.io/library/python:3.11-slim; then
  R=$W/rootfs
  t debootstrap --variant=minbase bookworm "$R" "$MIRROR" >"$W/debootstrap.log"
  printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb %s-security bookworm-security main\n' \
    "$MIRROR" "$MIRROR" "$MIRROR" >"$R/etc/apt/sources.list"
  cp /etc/resolv.conf "$R/etc/resolv.conf"
  mount -t proc proc "$R/proc"
  t chroot "$R" /bin/sh -c 'export DEBIAN_FRONTEND=noninteractive; apt-get update -q &&
    apt-get install -y -q --no-install-recommends python3 python3-venv python-is-python3 ca-certificates &&
    apt-get clean && rm -rf /var/lib/apt/lists/*' >"$W/chroot-apt.log"
  umount "$R/proc"
  # The egress proxy re-signs TLS: its CA must be trusted inside, or pip fails.
  cp /usr/local/share/ca-certificates/*.crt "$R/usr/local/share/ca-certificates/"
  chroot "$R" update-ca-certificates >/dev/null
  cp /etc/pip.conf "$R/etc/pip.conf"; mkdir -p "$R/etc/xdg"; cp -r /etc/xdg/pip "$R/etc/xdg/pip"
  ln -sf /usr/bin/python3 "$R/usr/local/bin/python"
  rm -rf "$R/etc/resolv.conf" "$R"/usr/share/doc/* "$R"/usr/share/man/* "$R"/var/cache/apt/*.bin
  tar -C "$R" --numeric-owner -cf "$W/base.tar" .
  $PM import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
    "$W/base.tar" docker.io/library/python:3.11-slim
fi
# 2. runc (crun refuses this host's hybrid cgroup v1/v2 layout), unpacked, not installed.
if [ ! -x "$W/runc/usr/sbin/runc" ]; then
  (cd "$W" && apt-get download runc && dpkg-deb -x runc_*.deb "$W/runc")
fi
# 3. Build. --format docker keeps HEALTHCHECK (OCI format drops it).
t $PM build --format docker --isolation=chroot --network=host --pull=never -f "$DF" -t textclf "$CTX"
$PM images
# 4. Run, probe, stop.
$PM run $RUNOPTS -d --name "$NAME" -p "127.0.0.1:$PORT:8000" -e APP_API_KEY=probe-key-12345 textclf
B=http://127.0.0.1:$PORT
for _ in $(seq 1 60); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' $B/readyz)" = 200 ] && break
  [ "$($PM inspect "$NAME" --format '{{.State.Running}}')" = true ] || { $PM logs "$NAME"; exit 1; }
  sleep 1
done
curl -fsS $B/readyz; echo
curl -fsS -X POST -H 'Content-Type: application/json' \
  -d '{"texts":["a gorgeous, witty movie","a tedious mess"]}' $B/predict; echo
curl -fsS $B/metrics | grep -c '^textclf_'
$PM healthcheck run "$NAME" && echo "healthcheck ok"
$PM exec "$NAME" python -c "import importlib.util as u, os; assert u.find_spec('torch') is None; print('uid', os.getuid(), 'no torch')"
$PM stop -t 35 "$NAME" >/dev/null
echo "exit code: $($PM inspect "$NAME" --format '{{.State.ExitCode}}')"
