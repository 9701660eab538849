#!/bin/sh
# Installs the Debian packages given as arguments that are missing.
# As root it runs apt-get; otherwise it prints the line to run and fails,
# or with -w (what the Makefile's targets use) only warns.
warn=
[ "$1" = -w ] && { warn=1; shift; }
missing=
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
    missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
  echo "installing:$missing"
  apt-get update -q >/dev/null &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
      --no-install-recommends $missing >/dev/null
else
  echo "missing packages; run as root:"
  echo "  apt-get install -y$missing"
  [ -n "$warn" ]
fi
