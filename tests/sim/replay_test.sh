#!/bin/sh
# Runs one simulator seed in two processes and compares their output
# (configuration, counters, trace hash). Usage: replay_test.sh SIM SEED
set -eu
sim="$1"
seed="$2"
first=$("$sim" --seed "$seed")
second=$("$sim" --seed "$seed")
if [ "$first" != "$second" ]; then
  echo "seed $seed does not replay across processes:"
  echo "--- first"; echo "$first"
  echo "--- second"; echo "$second"
  exit 1
fi
echo "$first"
