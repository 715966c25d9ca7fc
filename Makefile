# husk — build, test and benchmark entry points.
#   make deps      install the Debian packages the tests need (idempotent)
#   make build     debug build of husk
#   make testroot  busybox-static + probe rootfs in target/testroot/rootfs
#   make test      deps + build + lint + unit tests + root tests (incl. conformance, differential)
#                  + containerd integration + engines + runtime-tools validation + vm-test
#   make validation the OCI runtime-tools checks Debian ships (bundle validator, state schema,
#                  cgroup readers) against husk and runc (integration/validation.sh)
#   make engines   dockerd and podman driving husk (HUSK_BIN=/usr/sbin/runc to validate)
#   make vm-test   cgroup v2, systemd, AppArmor and SELinux guests (User-mode Linux): cgroup tests,
#                  real containers, LSM labels end to end; the CRI scenarios with containerd's
#                  systemd cgroup driver in the systemd guest
#   make demo      run a container from a `husk spec` bundle (needs root)
#   make bench     lifecycle benchmark: husk vs crun vs runc (also via dockerd) -> target/bench/report.md
#   make install   release binary, man pages, completions, engine docs (PREFIX, DESTDIR); uninstall
#   make deb       target/debian/husk_VERSION-1_amd64.deb (dpkg-deb)
#   make soak      3,600 SIGKILL injections over the nine operations (tests/faults.rs), then the
#                  concurrency pairs; seed printed (HUSK_FAULT_SEED=N replays); then 3,000
#                  config mutants from a random seed (HUSK_MUTATION_SEED=N replays); then 1,000
#                  network attach/detach cycles and 100 attaches SIGKILLed (HUSK_NET_SEED=N replays)
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

DEB_PKGS := busybox-static runc crun containerd libseccomp-dev hyperfine strace jq util-linux bsdutils iproute2 procps criu \
            docker.io tini podman conmon catatonit
# the cgroup v2 / systemd guests of `make vm-test` (integration/vm/vm-run.sh); apparmor for
# apparmor_parser in the AppArmor guest (harmless on a host without AppArmor: its scripts only
# load profiles where AppArmor is enabled)
DEB_PKGS += user-mode-linux gcc libc6-dev kmod debootstrap e2fsprogs apparmor
# nm for the release link's function order (benches/text-order reads the symbols with it)
DEB_PKGS += binutils
# the package test (`integration/package.sh`): installing the .deb, its man pages and completion
DEB_PKGS += man-db bash-completion lintian
# the CRI test (`integration/cri.sh`): the CRI client's protocol crate compiles api.proto with
# protoc; pods get their network from Debian's CNI plugins
DEB_PKGS += protobuf-compiler containernetworking-plugins
# the network tests (tests/network.rs): CNI's portmap and firewall plugins drive iptables
DEB_PKGS += iptables
# the network tests read the native driver's nftables tables with nft (husk itself writes them
# over netlink, src/network/native/nft.rs)
DEB_PKGS += nftables
# the image tests (tests/image.rs): a registry on loopback, skopeo to push, umoci to build images
# and to compare unpacked trees, htpasswd for the registry's basic auth
DEB_PKGS += docker-registry skopeo umoci apache2-utils
# newuidmap/newgidmap: a user's rootless unpack with /etc/subuid ranges, and its run
DEB_PKGS += uidmap
# rootless networking of husk up: pasta (package passt), else slirp4netns
DEB_PKGS += slirp4netns passt
# the runtime-tools stage (integration/validation.sh): Go and the OCI runtime-tools libraries
# (validate, cgroups) with the runtime-spec JSON schemas, built offline from /usr/share/gocode
DEB_PKGS += golang-go golang-github-opencontainers-runtime-tools-dev golang-github-opencontainers-specs-dev

.PHONY: soak test-repeat deps demo-deps install-pkgs build release pgo-tools pgo-profile probe testroot test lint docs install uninstall deb package-test cri unit-test root-test integration engines validation conformance differential vm-test demo bench clean

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
PGO_RUSTFLAGS = $(STATIC_FLAGS) -C profile-use=$(PGO_DIR)/husk.profdata -C link-arg=-Wl,-z,keep-text-section-prefix
ifeq ($(PGO),1)
release: testroot pgo-profile $(PGO_DIR)/husk.order
	RUSTFLAGS="$(PGO_RUSTFLAGS)" $(CARGO) rustc --release --target $(STATIC_TARGET) --bin husk -- \
		-C link-arg=-Wl,--symbol-ordering-file=$(PGO_DIR)/husk.order -C link-arg=-Wl,--no-warn-symbol-ordering
else
release:
	@echo "release: building without a profile (PGO=0; the training needs root)"
	RUSTFLAGS="$(STATIC_FLAGS)" $(CARGO) build --release --target $(STATIC_TARGET) --bin husk
endif

# The function order (benches/text-order): the profile-guided build, linked with its symbols,
# runs the training again under a tracer that puts a breakpoint on every function and records
# each the first time it runs; the release link then puts those functions side by side at the
# start of .text (lld --symbol-ordering-file). The kernel maps text 64 KiB around each fault, so
# the ~600 KiB a start runs, scattered over 7 MB, cost a window each: ordered, `run`'s peak RSS
# went from 3.8 to 3.0 MB (5.4 MB for a build with neither profile nor order).
# Redone only when the profile changes (the profile is redone when the sources change).
TEXT_ORDER := $(CURDIR)/target/text-order/release/husk-text-order
$(PGO_DIR)/husk.order: $(PGO_DIR)/husk.profdata benches/text-order/src/main.rs benches/pgo-train.sh | testroot
	RUSTFLAGS="$(PGO_RUSTFLAGS)" $(CARGO) rustc --release --target $(STATIC_TARGET) --bin husk -- -C strip=none
	cd benches/text-order && $(CARGO) build --release --quiet --target-dir $(CURDIR)/target/text-order
	$(TEXT_ORDER) $(RELEASE_BIN) $@.tmp -- bash benches/pgo-train.sh $(RELEASE_BIN) $(CURDIR)/$(TESTROOT) -
	mv $@.tmp $@

# llvm-profdata comes with rustup's llvm-tools component (it must match rustc's LLVM).
pgo-tools:
	@test -x "$(LLVM_PROFDATA)" || rustup component add llvm-tools
	@test -x "$(LLVM_PROFDATA)" || { echo "pgo: $(LLVM_PROFDATA) missing after installing llvm-tools" >&2; exit 1; }

# The profile is a file target: trained again only when the sources or the training changed, so
# `make release` after `make deb` (or twice) does not run the training twice.
RUST_SRCS := $(shell find src -name '*.rs') Cargo.toml Cargo.lock build.rs
pgo-profile: $(PGO_DIR)/husk.profdata
$(PGO_DIR)/husk.profdata: $(RUST_SRCS) benches/pgo-train.sh | pgo-tools testroot
	rm -rf $(PGO_DIR)/raw
	RUSTFLAGS="-C profile-generate=$(PGO_DIR)/raw" \
		$(CARGO) build --release --target $(STATIC_TARGET) --bin husk --target-dir $(PGO_DIR)/build
	bash benches/pgo-train.sh $(PGO_DIR)/build/$(STATIC_TARGET)/release/husk $(CURDIR)/$(TESTROOT) $(PGO_DIR)/raw
	"$(LLVM_PROFDATA)" merge -o $(PGO_DIR)/husk.profdata.tmp $(PGO_DIR)/raw
	mv $(PGO_DIR)/husk.profdata.tmp $(PGO_DIR)/husk.profdata

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
	chmod 0700 $(TESTROOT)/root
	install -m 0755 /bin/busybox $(TESTROOT)/bin/busybox
	for a in $$(/bin/busybox --list); do [ "$$a" = busybox ] || ln -sf busybox "$(TESTROOT)/bin/$$a"; done
	@file $(PROBE_BIN) | grep -q 'static' || { echo "testroot: $(PROBE_BIN) is not static (rebuild it with make probe)" >&2; exit 1; }
	install -m 0755 $(PROBE_BIN) $(TESTROOT)/probe
	printf 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > $(TESTROOT)/etc/passwd
	printf 'root:x:0:\ntty:x:5:\nuser:x:1000:\nextra:x:1001:user\nnogroup:x:65534:\n' > $(TESTROOT)/etc/group
	printf 'testroot\n' > $(TESTROOT)/etc/hostname
	chown 1000:1000 $(TESTROOT)/home/user
	touch $@

# Every stage runs even if an earlier one failed; the exit status says whether all passed. Each
# stage's output also goes to target/test-logs/STAGE.log, and integration/summary.sh ends the run
# with a table of what passed, failed and was skipped (with the reasons), and a closing
# "make test: N passed, N failed, N skipped" line.
LOGS := target/test-logs
# the root tests `make test` runs a second time with the fallbacks for older kernels forced
FALLBACK_TESTS := --test fallbacks --test conformance_lifecycle --test conformance_config \
	--test rootfs --test security --test namespaces --test process --test process_env \
	--test cli_flags --test cgroups --test hooks --test errors --test exec_affinity --test state \
	--test spec_1_3 --test rootless --test checkpoint

test: deps build testroot
	@rc=0; rm -rf $(LOGS); mkdir -p $(LOGS); \
	echo "== lint: cargo fmt --check, cargo clippy -D warnings"; \
	$(MAKE) --no-print-directory lint 2>&1 | tee $(LOGS)/lint.log; \
	if [ "$${PIPESTATUS[0]}" = 0 ]; then echo "lint: ok" >>$(LOGS)/lint.log; else echo "lint: failed" >>$(LOGS)/lint.log; rc=1; fi; \
	echo "== unit tests"; $(CARGO) test --lib --bins 2>&1 | tee $(LOGS)/unit.log; \
	[ "$${PIPESTATUS[0]}" = 0 ] || rc=1; \
	echo "== root tests incl. conformance_* and differential (HUSK_BIN=$(HUSK_BIN))"; \
	HUSK_BIN=$(HUSK_BIN) $(CARGO) test --no-fail-fast --test '*' -- --test-threads=2 2>&1 | tee $(LOGS)/root.log; \
	[ "$${PIPESTATUS[0]}" = 0 ] || rc=1; cp $(LOGS)/root.log target/root-tests.log; \
	echo "== fallbacks: root tests with clone3, openat2 and the mount API treated as missing (HUSK_FORCE_ENOSYS=all, a debug build's switch); left out: id-mapped mounts and recursive mount options, which need mount_setattr (Linux 5.12), time namespaces, which need clone3, a container without a mount namespace and a bind source only the runtime can reach from a user namespace, which need open_tree: none has a fallback"; \
	HUSK_FORCE_ENOSYS=all HUSK_BIN=$(HUSK_BIN) $(CARGO) test --no-fail-fast $(FALLBACK_TESTS) -- --test-threads=2 --skip idmap --skip id_mapped --skip recursive_mount_options --skip mount_options_are_recognized --skip time_namespace --skip all_eight_namespaces --skip no_mount_namespace --skip userns_bind_source_unreachable 2>&1 | tee $(LOGS)/fallback.log; \
	[ "$${PIPESTATUS[0]}" = 0 ] || rc=1; \
	echo "== conformance table from this run -> target/conformance.md (committed: docs/conformance.md)"; \
	python3 docs/gen-conformance.py --log target/root-tests.log --out target/conformance.md || rc=1; \
	echo "== containerd integration (HUSK_BIN=$(HUSK_BIN))"; \
	HUSK_BIN=$(HUSK_BIN) bash integration/containerd.sh 2>&1 | tee $(LOGS)/containerd.log; \
	[ "$${PIPESTATUS[0]}" = 0 ] || rc=1; \
	echo "== engines integration: dockerd, podman (HUSK_BIN=$(HUSK_BIN))"; \
	HUSK_BIN=$(HUSK_BIN) bash integration/engines/run.sh 2>&1 | tee $(LOGS)/engines.log; \
	[ "$${PIPESTATUS[0]}" = 0 ] || rc=1; \
	echo "== Kubernetes CRI: a private containerd's CRI plugin runs pods on husk and runc (integration/cri.sh)"; \
	HUSK_BIN=$(HUSK_BIN) bash integration/cri.sh 2>&1 | tee $(LOGS)/cri.log; \
	[ "$${PIPESTATUS[0]}" = 0 ] || rc=1; \
	echo "== OCI runtime-tools: its bundle validator, state schema and cgroup readers on husk and runc (integration/validation.sh)"; \
	HUSK_BIN=$(HUSK_BIN) bash integration/validation.sh 2>&1 | tee $(LOGS)/validation.log; \
	[ "$${PIPESTATUS[0]}" = 0 ] || rc=1; \
	echo "== the Debian package: make deb, install, man, completion, engines configured by docs/engines"; \
	bash integration/package.sh 2>&1 | tee $(LOGS)/package.log; \
	[ "$${PIPESTATUS[0]}" = 0 ] || rc=1; \
	echo "== cgroup v2, systemd, AppArmor, SELinux guests, CRI with systemd (User-mode Linux)"; \
	$(MAKE) --no-print-directory vm-test 2>&1 | tee $(LOGS)/vm.log; \
	[ "$${PIPESTATUS[0]}" = 0 ] || rc=1; \
	echo "== summary"; bash integration/summary.sh $(LOGS) || rc=1; \
	exit $$rc

# Formatting and lints of both crates (husk and the probe), as CI checks them.
lint:
	$(CARGO) fmt --check
	cd $(PROBE_DIR) && $(CARGO) fmt --check
	cd integration/cri && $(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

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
	HUSK_MUTATION_SEED=random HUSK_MUTANTS=3000 HUSK_BIN=$(HUSK_BIN) $(CARGO) test --test mutation -- --nocapture
	HUSK_NET_CYCLES=1000 HUSK_NET_KILLS=100 HUSK_BIN=$(HUSK_BIN) $(CARGO) test --test network attach_detach_cycles -- --nocapture

# Whether the whole suite is green every time, not once: N consecutive `make test` runs.
N ?= 10
test-repeat:
	@for i in $$(seq 1 $(N)); do \
		echo "== test-repeat: run $$i of $(N)"; \
		$(MAKE) --no-print-directory test || { echo "test-repeat: run $$i of $(N) failed"; exit 1; }; \
	done; echo "test-repeat: $(N) of $(N) green"

bench: release testroot
	BENCH_HUSK=$(RELEASE_BIN) $(CARGO) bench --bench lifecycle

# containerd's CRI plugin drives husk and runc with the project's CRI client (integration/cri)
cri: build testroot
	HUSK_BIN=$(HUSK_BIN) bash integration/cri.sh

# the OCI runtime-tools libraries Debian ships (validate, cgroups; built offline with Go) and the
# runtime-spec schemas applied to what husk and runc produce (integration/validation.sh)
validation: build testroot
	HUSK_BIN=$(HUSK_BIN) bash integration/validation.sh

# the package as a user installs it (integration/package.sh; installs and removes the .deb)
package-test: build testroot
	bash integration/package.sh

# Man pages (husk(8), husk-SUBCOMMAND(8)) and bash/zsh/fish completions, generated from the clap
# definitions (examples/gen-docs.rs), so they never drift from --help.
DOCS_DIR := target/docs
docs:
	rm -rf $(DOCS_DIR) && $(CARGO) run --quiet --example gen-docs -- $(DOCS_DIR)

# make install [PREFIX=/usr/local] [DESTDIR=]: the release binary (the one `make bench` measures),
# man pages, completions and the engine setup docs. make uninstall removes exactly those files.
PREFIX ?= /usr/local
BINDIR := $(DESTDIR)$(PREFIX)/bin
MAN8DIR := $(DESTDIR)$(PREFIX)/share/man/man8
BASHCOMPDIR := $(DESTDIR)$(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR := $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions
FISHCOMPDIR := $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
DOCDIR := $(DESTDIR)$(PREFIX)/share/doc/husk
ENGINE_DOCS := docs/engines/README.md docs/engines/containerd-config.toml docs/engines/daemon.json \
               docs/engines/containers.conf docs/engines/runtimeclass.yaml
install: release docs
	install -D -m 0755 $(RELEASE_BIN) $(BINDIR)/husk
	install -d $(MAN8DIR) $(BASHCOMPDIR) $(ZSHCOMPDIR) $(FISHCOMPDIR) $(DOCDIR)
	install -m 0644 $(DOCS_DIR)/man/*.8 $(MAN8DIR)/
	install -m 0644 $(DOCS_DIR)/completions/husk.bash $(BASHCOMPDIR)/husk
	install -m 0644 $(DOCS_DIR)/completions/_husk $(ZSHCOMPDIR)/_husk
	install -m 0644 $(DOCS_DIR)/completions/husk.fish $(FISHCOMPDIR)/husk.fish
	install -m 0644 README.md $(DOCDIR)/README.md
	install -d $(DOCDIR)/engines
	install -m 0644 $(ENGINE_DOCS) $(DOCDIR)/engines/

uninstall:
	rm -f $(BINDIR)/husk $(BASHCOMPDIR)/husk $(ZSHCOMPDIR)/_husk $(FISHCOMPDIR)/husk.fish
	rm -f $(MAN8DIR)/husk.8 $(MAN8DIR)/husk-*.8
	rm -rf $(DOCDIR)

# A Debian package of `make install` with PREFIX=/usr (dpkg-deb; the binary is static, so it
# depends on nothing): target/debian/husk_VERSION-1_amd64.deb
DEB_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)-1
DEB_ROOT := target/debian/root
DEB_FILE := target/debian/husk_$(DEB_VERSION)_amd64.deb
deb: release docs
	rm -rf $(DEB_ROOT) && mkdir -p $(DEB_ROOT)
	$(MAKE) --no-print-directory install PREFIX=/usr DESTDIR=$(CURDIR)/$(DEB_ROOT) PGO=$(PGO)
	gzip -9n $(DEB_ROOT)/usr/share/man/man8/*.8
	printf '%s\n' 'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/' \
		'Upstream-Name: husk' '' 'Files: *' 'Copyright: 2026 the husk developers' 'License: Apache-2.0' \
		' On Debian systems the full text of the Apache License 2.0 is in' \
		' /usr/share/common-licenses/Apache-2.0.' > $(DEB_ROOT)/usr/share/doc/husk/copyright
	printf 'husk ($(DEB_VERSION)) unstable; urgency=medium\n\n  * Built from commit %s.\n\n -- husk developers <husk@localhost>  %s\n' \
		"$$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$$(date -R -d @$$(git log -1 --format=%ct 2>/dev/null || date +%s))" \
		| gzip -9n > $(DEB_ROOT)/usr/share/doc/husk/changelog.Debian.gz
	install -d $(DEB_ROOT)/usr/share/lintian/overrides
	printf '%s\n' '# yaml-rust2 (CDI spec files) is a pure-Rust port of libyaml that keeps its error' \
		'# strings; no libyaml code is linked, so there is no library to depend on instead.' \
		'husk: embedded-library libyaml [usr/bin/husk]' > $(DEB_ROOT)/usr/share/lintian/overrides/husk
	mkdir -p $(DEB_ROOT)/DEBIAN
	printf '%s\n' 'Package: husk' 'Version: $(DEB_VERSION)' 'Architecture: amd64' \
		'Maintainer: husk developers <husk@localhost>' \
		"Installed-Size: $$(du -sk --exclude=DEBIAN $(DEB_ROOT) | cut -f1)" \
		'Section: admin' 'Priority: optional' \
		'Suggests: criu' \
		'Description: OCI container runtime with runc'"'"'s command line' \
		' husk reads an OCI bundle (runtime-spec 1.2) and runs the container' \
		' behind runc'"'"'s command line, so containerd, Docker and podman drive it' \
		' unchanged. The binary is static and profile-guided.' > $(DEB_ROOT)/DEBIAN/control
	dpkg-deb --root-owner-group --build -Zxz $(DEB_ROOT) $(DEB_FILE)
	@echo "deb: $(DEB_FILE)"

clean:
	$(CARGO) clean
	rm -rf $(PROBE_DIR)/target
