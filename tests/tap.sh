# tap.sh - sourced by the shell tests (man.sh, install.sh): ok and not_ok print one TAP
# line each and count it; tap_end prints the plan and exits 1 if any was not ok.
n=0
fail=0
ok() {
	n=$((n + 1))
	echo "ok $n - $*"
}
not_ok() {
	n=$((n + 1))
	echo "not ok $n - $*"
	fail=1
}
tap_end() {
	echo "1..$n"
	exit $fail
}
