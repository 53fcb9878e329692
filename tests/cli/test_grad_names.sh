#!/usr/bin/env bash
# ./test_grad refuses a family, route or --recompute it does not know, naming the valid ones, and exits
# non-zero: a typo must not pass having checked nothing.
# Usage: test_grad_names.sh TEST_GRAD
set -uo pipefail
bin=$1
failed=0
check() {   # check EXPECTED_IN_MESSAGE ARGS...
    local want=$1
    shift
    local out
    if out=$("$bin" --no-layers "$@" 2>&1); then
        echo "FAIL: test_grad $* exits 0"
        failed=1
    elif ! grep -qF -- "$want" <<< "$out"; then
        echo "FAIL: test_grad $*: the message does not list the valid names ($want):"
        echo "$out"
        failed=1
    else
        echo "PASS: test_grad $* is refused: $(head -n 1 <<< "$out")"
    fi
}
for route in keep-every2 bogus random-5; do
    check "all-own,borrow-previous,borrow-layer0,random-0,random-1,random-2,keep-every-2,keep-every-3" --route "$route"
done
check "gpt2,llama3,qwen3" --family gpt3
check "none,mlp,layer" --recompute attention
exit $failed
