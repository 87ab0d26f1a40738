# Sourced by the scripts beside it: run <name> <overrides...> trains into $OUT/<name> with $PY (from the
# repository root), skips a finished run and continues an interrupted one with resume=<run dir>.
run() {
  local name=$1 dir=$OUT/$1; shift
  if grep -qs '"status": "ok"' "$dir/metrics.json"; then echo "done: $name"; return 0; fi
  if [ -e "$dir/checkpoints/last.ckpt" ]; then "$PY" train.py resume="$dir"; else "$PY" train.py "$@" hydra.run.dir="$dir"; fi
}
