# husk — build, test and benchmark entry points.
#   make deps      install the Debian packages the tests need (idempotent)
#   make build     debug build of husk
#   make testroot  busybox-static + probe rootfs in target/testroot/rootfs
#   make test      deps + build + unit tests + root tests (incl. conformance, differential)
#                  + containerd integration + engines + vm-test
#   make engines   dockerd and podman driving husk (HUSK_BIN=/usr/sbin/runc to validate)
#   make vm-test   cgroup v2, systemd, AppArmor and SELinux guests (User-mode Linux): cgroup tests,
#                  real containers, LSM labels end to end
#   make demo      run a container from a `husk spec` bundle (needs root)
#   make bench     lifecycle benchmark: husk vs crun vs runc (also via dockerd) -> target/bench/report.md
#   make soak      3,600 SIGKILL injections over the nine operations (tests/faults.rs), then the
#                  concurrency pairs; seed printed (HUSK_FAULT_SEED=N replays)
#   make test-repeat N=10   `make test` N times in a row, stopping at the first red run
#   make clean
SHELL := /bin/bash
.DEFAULT_GOAL := build

CARGO      ?= cargo
HOST_TRIPLE := x86_64-unknown-linux-gnu
PROBE_DIR  := tests/probe
PROBE_BIN  := $(PROBE_DIR)/target/$(HOST_TRIPLE)/release/probe
TESTROOT   := target/testroot/rootfs
HUSK_DEBUG := $(CURDIR)/target/debug/husk
# The runtime under test; override with e.g. HUSK_BIN=/usr/sbin/runc to validate the suite.
HUSK_BIN   ?= $(HUSK_DEBUG)
export HUSK_TESTROOT := $(CURDIR)/$(TESTROOT)
# anyhow would capture a backtrace per error; in forked test children that can deadlock.
export RUST_LIB_BACKTRACE := 0

DEB_PKGS := busybox-static runc crun containerd hyperfine strace jq util-linux bsdutils iproute2 procps criu \
            docker.io tini podman conmon catatonit
# the cgroup v2 / systemd guests of `make vm-test` (integration/vm/vm-run.sh); apparmor for
# apparmor_parser in the AppArmor guest (harmless on a host without AppArmor: its scripts only
# load profiles where AppArmor is enabled)
DEB_PKGS += user-mode-linux gcc libc6-dev kmod debootstrap e2fsprogs apparmor

.PHONY: soak test-repeat deps demo-deps install-pkgs build release pgo-tools pgo-profile probe testroot test unit-test root-test integration engines conformance differential vm-test demo bench clean

# What `make demo` needs (a subset of DEB_PKGS).
DEMO_PKGS := busybox-static jq

deps:
	@$(MAKE) --no-print-directory install-pkgs PKGS="$(DEB_PKGS)"

demo-deps:
	@$(MAKE) --no-print-directory install-pkgs PKGS="$(DEMO_PKGS)"

# Install the Debian packages in PKGS that are missing (idempotent).
install-pkgs:
	@missing=""; for p in $(PKGS); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed$$' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "deps: installing$$missing"; \
		if [ "$$(id -u)" != 0 ]; then echo "deps: need root to install$$missing" >&2; exit 1; fi; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y --no-install-recommends $$missing || \
		{ apt-get update && apt-get install -y --no-install-recommends $$missing; }; \
	else echo "deps: all present"; fi

build:
	$(CARGO) build --bins

# The binary to ship and benchmark: static and non-PIE, so starting it needs no dynamic loader
# and touches fewer pages (measured: faster start, ~1.5 MB less RSS than the default PIE build).
# (`cargo build --release` still gives the ordinary target/release/husk.)
#
# Profile-guided (PGO, on by default when root): an instrumented build runs a short training
# (benches/pgo-train.sh: the run/create/start/exec/delete/list/state paths on the test rootfs,
# real containers, so it needs root), llvm-profdata merges the counters, and the final build
# uses them. LLVM puts the code the training ran into .text.hot and code it never ran into
# .text.unlikely, and `-z keep-text-section-prefix` keeps those apart in the binary, so the
# kernel's fault-around maps far less of it: measured ~1 MB less peak RSS per `run`.
# PGO=0 builds without a profile. (The instrumented build is dynamic: the static link of the
# instrumented code fails on glibc's versioned termios symbols; the profile matches either way.)
STATIC_TARGET := x86_64-unknown-linux-gnu
RELEASE_BIN := $(CURDIR)/target/$(STATIC_TARGET)/release/husk
STATIC_FLAGS := -C target-feature=+crt-static -C relocation-model=static
PGO ?= $(if $(filter 0,$(shell id -u)),1,0)
PGO_DIR := $(CURDIR)/target/pgo
LLVM_PROFDATA = $(shell rustc --print sysroot)/lib/rustlib/$(HOST_TRIPLE)/bin/llvm-profdata
ifeq ($(PGO),1)
release: testroot pgo-profile
	RUSTFLAGS="$(STATIC_FLAGS) -C profile-use=$(PGO_DIR)/husk.profdata -C link-arg=-Wl,-z,keep-text-section-prefix" \
		$(CARGO) build --release --target $(STATIC_TARGET) --bin husk
else
release:
	@echo "release: building without a profile (PGO=0; the training needs root)"
	RUSTFLAGS="$(STATIC_FLAGS)" $(CARGO) build --release --target $(STATIC_TARGET) --bin husk
endif

# llvm-profdata comes with rustup's llvm-tools component (it must match rustc's LLVM).
pgo-tools:
	@test -x "$(LLVM_PROFDATA)" || rustup component add llvm-tools
	@test -x "$(LLVM_PROFDATA)" || { echo "pgo: $(LLVM_PROFDATA) missing after installing llvm-tools" >&2; exit 1; }

pgo-profile: pgo-tools testroot
	rm -rf $(PGO_DIR)/raw
	RUSTFLAGS="-C profile-generate=$(PGO_DIR)/raw" \
		$(CARGO) build --release --target $(STATIC_TARGET) --bin husk --target-dir $(PGO_DIR)/build
	bash benches/pgo-train.sh $(PGO_DIR)/build/$(STATIC_TARGET)/release/husk $(CURDIR)/$(TESTROOT) $(PGO_DIR)/raw
	"$(LLVM_PROFDATA)" merge -o $(PGO_DIR)/husk.profdata $(PGO_DIR)/raw

probe: $(PROBE_BIN)
$(PROBE_BIN): $(PROBE_DIR)/Cargo.toml $(wildcard $(PROBE_DIR)/src/*.rs)
	cd $(PROBE_DIR) && RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --release --target $(HOST_TRIPLE)
	@file $@ | grep -q 'static' || { echo "probe is not static" >&2; exit 1; }

testroot: target/testroot/.stamp
target/testroot/.stamp: $(PROBE_BIN) Makefile
	@test -x /bin/busybox || { echo "testroot: /bin/busybox missing (make deps)" >&2; exit 1; }
	@file -L /bin/busybox | grep -q 'statically linked' || { echo "testroot: /bin/busybox is not static (install busybox-static)" >&2; exit 1; }
	rm -rf $(TESTROOT) && mkdir -p $(TESTROOT)
	cd $(TESTROOT) && mkdir -p bin sbin usr/bin usr/sbin etc proc sys dev tmp root home/user run var/tmp mnt
	chmod 1777 $(TESTROOT)/tmp $(TESTROOT)/var/tmp
	install -m 0755 /bin/busybox $(TESTROOT)/bin/busybox
	for a in $$(/bin/busybox --list); do [ "$$a" = busybox ] || ln -sf busybox "$(TESTROOT)/bin/$$a"; done
	install -m 0755 $(PROBE_BIN) $(TESTROOT)/probe
	printf 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > $(TESTROOT)/etc/passwd
	printf 'root:x:0:\ntty:x:5:\nuser:x:1000:\nextra:x:1001:user\nnogroup:x:65534:\n' > $(TESTROOT)/etc/group
	printf 'testroot\n' > $(TESTROOT)/etc/hostname
	chown 1000:1000 $(TESTROOT)/home/user
	touch $@

# Every stage runs even if an earlier one failed; the exit status says whether all passed.
test: deps build testroot
	@rc=0; \
	echo "== unit tests"; $(CARGO) test --lib --bins || rc=1; \
	echo "== root tests incl. conformance_* and differential (HUSK_BIN=$(HUSK_BIN))"; \
	HUSK_BIN=$(HUSK_BIN) $(CARGO) test --no-fail-fast --test '*' -- --test-threads=2 2>&1 | tee target/root-tests.log; \
	[ "$${PIPESTATUS[0]}" = 0 ] || rc=1; \
	echo "== conformance table from this run -> target/conformance.md (committed: docs/conformance.md)"; \
	python3 docs/gen-conformance.py --log target/root-tests.log --out target/conformance.md || rc=1; \
	echo "== containerd integration (HUSK_BIN=$(HUSK_BIN))"; HUSK_BIN=$(HUSK_BIN) bash integration/containerd.sh || rc=1; \
	echo "== engines integration: dockerd, podman (HUSK_BIN=$(HUSK_BIN))"; HUSK_BIN=$(HUSK_BIN) bash integration/engines/run.sh || rc=1; \
	echo "== cgroup v2, systemd, AppArmor, SELinux guests (User-mode Linux)"; $(MAKE) --no-print-directory vm-test || rc=1; \
	exit $$rc

unit-test:
	$(CARGO) test --lib --bins

root-test: build testroot
	HUSK_BIN=$(HUSK_BIN) $(CARGO) test --no-fail-fast --test '*' -- --test-threads=2

# all root tests (the table also cites tests outside conformance_*), then regenerate docs/conformance.md
conformance: build testroot
	HUSK_BIN=$(HUSK_BIN) $(CARGO) test --no-fail-fast --test '*' -- --test-threads=2 2>&1 | tee target/root-tests.log; \
	python3 docs/gen-conformance.py --log target/root-tests.log --out docs/conformance.md

# husk vs runc vs crun over spec-fixtures/ (report: target/differential-report.md)
differential: build testroot
	HUSK_BIN=$(HUSK_BIN) $(CARGO) test --test differential -- --nocapture

integration: build testroot
	HUSK_BIN=$(HUSK_BIN) bash integration/containerd.sh

# dockerd and podman (private daemons, locally imported image) driving HUSK_BIN
engines: build testroot
	HUSK_BIN=$(HUSK_BIN) bash integration/engines/run.sh

# cgroup v2 (cgroupfs), systemd and systemd-on-hybrid (--systemd-cgroup) checks, and AppArmor and
# SELinux (process labels, exec) checks, in User-mode Linux guests; the first systemd guest build
# takes ~2 minutes and is cached under /var/tmp/vm-run.
vm-test: build testroot
	bash integration/vm/run.sh

# The demo bundle: `husk spec`, the test rootfs, a non-interactive process that shows the
# container's view (hostname, pid 1, cgroup limits, capabilities).
DEMO := target/demo
demo: demo-deps build testroot
	@if [ "$$(id -u)" != 0 ]; then echo "demo: needs root" >&2; exit 1; fi
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	cp -a $(TESTROOT) $(DEMO)/rootfs
	cd $(DEMO) && $(HUSK_BIN) spec
	jq '.process.terminal = false | .hostname = "husk-demo" | .process.args = ["/bin/sh","-c", "echo hostname: $$(hostname); echo pid: $$$$; echo memory.limit_in_bytes: $$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max); echo pids.max: $$(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max); grep ^Cap /proc/self/status"] | .linux.resources.memory.limit = 67108864 | .linux.resources.pids.limit = 64' \
		$(DEMO)/config.json > $(DEMO)/config.json.new && mv $(DEMO)/config.json.new $(DEMO)/config.json
	@id=husk-demo-$$$$; root=$$(mktemp -d /tmp/husk-demo-root.XXXXXX); \
	echo "+ $(HUSK_BIN) --root $$root run --bundle $(DEMO) $$id"; \
	$(HUSK_BIN) --root $$root run --bundle $(DEMO) $$id; rc=$$?; \
	$(HUSK_BIN) --root $$root delete --force $$id >/dev/null 2>&1; rm -rf $$root; exit $$rc

# The fault-injection campaign at full size (the suite runs 270 injections).
SOAK_FAULTS ?= 3600
soak: build testroot
	HUSK_FAULTS=$(SOAK_FAULTS) HUSK_BIN=$(HUSK_BIN) $(CARGO) test --test faults -- --nocapture --test-threads=1

# Whether the whole suite is green every time, not once: N consecutive `make test` runs.
N ?= 10
test-repeat:
	@for i in $$(seq 1 $(N)); do \
		echo "== test-repeat: run $$i of $(N)"; \
		$(MAKE) --no-print-directory test || { echo "test-repeat: run $$i of $(N) failed"; exit 1; }; \
	done; echo "test-repeat: $(N) of $(N) green"

bench: release testroot
	BENCH_HUSK=$(RELEASE_BIN) $(CARGO) bench --bench lifecycle

clean:
	$(CARGO) clean
	rm -rf $(PROBE_DIR)/target
