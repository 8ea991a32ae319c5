# Caudal: plain non-recursive Makefile. `make deps` installs what the build
# and the tests need (the list is deps.txt), `make` builds into build/,
# `make test` runs unit and end-to-end tests, `make up`/`make down` run a
# local cluster.

B ?= build
CC ?= gcc
OPT ?= -O2 -g
SAN ?=
WARN = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla
CFLAGS_BASE = -std=gnu11 $(OPT) $(SAN) -D_GNU_SOURCE -pthread -I$(B)/gen -Ifs -MMD -MP
PKG = pkg-config

GRPC_CF := $(shell $(PKG) --cflags grpc libprotobuf-c 2>/dev/null)
GRPC_LD := $(shell $(PKG) --libs grpc libprotobuf-c 2>/dev/null)
HTTP_LD := $(shell $(PKG) --libs libmicrohttpd gnutls jansson 2>/dev/null)
FS_LD = $(GRPC_LD) $(shell $(PKG) --libs libxxhash inih openssl 2>/dev/null) $(HTTP_LD) -lm
ROCKS_LD := $(shell $(PKG) --libs rocksdb 2>/dev/null || echo -lrocksdb)
FUSE_CF := $(shell $(PKG) --cflags fuse3 2>/dev/null)
FUSE_LD := $(shell $(PKG) --libs fuse3 2>/dev/null)

CFLAGS = $(CFLAGS_BASE) $(GRPC_CF) $(WARN)

# Quiet by default: one short line per step ("CC fs/cdl_rpc.c"), as Redis
# and the kernel do; `make V=1` prints the full commands. Compiler errors
# and warnings show in full either way.
ifeq ($(V),1)
Q =
say = @true
SILENT =
else
Q = @
say = @printf '  %-7s %s\n'
SILENT = -s
endif
LDFLAGS += $(SAN) -pthread

PROTOS = $(wildcard fs/*.proto)
GEN_C = $(patsubst fs/%.proto,$(B)/gen/%.pb-c.c,$(PROTOS))
GEN_H = $(GEN_C:.c=.h)
GEN_O = $(patsubst $(B)/gen/%.c,$(B)/obj/gen/%.o,$(GEN_C))

# fs/cdl_cli.c is the `caudal` program; every other fs/cdl_*.c is libcaudal.
LIB_SRC = $(filter-out fs/cdl_cli.c,$(wildcard fs/cdl_*.c))
LIB_O = $(patsubst %.c,$(B)/obj/%.o,$(LIB_SRC)) $(GEN_O)
# The web UI's page, script and style sheet (fs/ui/) are built into
# libcaudal as C arrays (xxd -i), so a daemon serves them with no files.
UI_ASSETS = fs/ui/index.html fs/ui/app.js fs/ui/style.css fs/ui/favicon.svg
LIB_O += $(B)/obj/gen/cdl_ui_assets.o
LIB = $(B)/libcaudal.a

# Each daemon folder: *_main*.c hold main(); the rest link into tests too.
define folder
$(1)_ALL = $$(wildcard $(2)/$(3)_*.c)
$(1)_MAINS = $$(filter $(2)/$(3)_main%.c,$$($(1)_ALL))
$(1)_O = $$(patsubst %.c,$(B)/obj/%.o,$$(filter-out $$($(1)_MAINS),$$($(1)_ALL)))
endef
$(eval $(call folder,NN,namenode,nn))
$(eval $(call folder,DN,datanode,dn))
$(eval $(call folder,JOB,jobs,job))
$(eval $(call folder,MNT,mount,mnt))

BIN = $(B)/bin
PROGS = $(BIN)/caudal $(BIN)/caudal-namenode $(BIN)/caudal-datanode
ifneq ($(wildcard jobs/job_main_jt.c),)
PROGS += $(BIN)/caudal-jobtracker
endif
ifneq ($(wildcard jobs/job_main_tt.c),)
PROGS += $(BIN)/caudal-tasktracker
endif
ifneq ($(wildcard mount/mnt_main.c),)
PROGS += $(BIN)/caudal-mount $(BIN)/mount.caudal
endif

BENCH_BIN = $(B)/bench/nn_bench

UNIT_SRC = $(wildcard tests/unit/test_*.c)
UNIT_BIN = $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRC))

# Keep the unit tests' objects (make would delete them as intermediates,
# and say so in a long "rm" line).
.SECONDARY:

.PHONY: all deps test unit e2e up down bench asan tsan lint clean fuzz install crashtest test-cluster
all: $(PROGS) $(UNIT_BIN) $(BENCH_BIN)

# One dpkg-query for the whole list; apt-get runs only when something is
# missing.
deps:
	@want=$$(grep -v '^#' deps.txt); \
	have=$$(dpkg-query -W -f='$${Package} $${Status}\n' $$want 2>/dev/null | awk '/ ok installed$$/ { print $$1 }'); \
	missing=$$(for p in $$want; do echo "$$have" | grep -qx "$$p" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "all dependencies present"; fi

$(B)/gen/%.pb-c.c $(B)/gen/%.pb-c.h: fs/%.proto
	@mkdir -p $(B)/gen
	$(say) PROTOC $<
	$(Q)protoc-c --proto_path=fs --c_out=$(B)/gen $<

$(B)/gen/cdl_ui_assets.c: $(UI_ASSETS)
	@mkdir -p $(B)/gen
	for f in $(UI_ASSETS); do xxd -i $$f || exit 1; done >$@.tmp && mv $@.tmp $@

$(B)/obj/gen/%.o: $(B)/gen/%.c
	@mkdir -p $(dir $@)
	$(say) CC $<
	$(Q)$(CC) $(CFLAGS_BASE) $(GRPC_CF) -c -o $@ $<

$(B)/obj/mount/%.o: mount/%.c | $(GEN_H)
	@mkdir -p $(dir $@)
	$(say) CC $<
	$(Q)$(CC) $(CFLAGS) $(FUSE_CF) -c -o $@ $<

$(B)/obj/tests/%.o: tests/%.c | $(GEN_H)
	@mkdir -p $(dir $@)
	$(say) CC $<
	$(Q)$(CC) $(CFLAGS) $(FUSE_CF) -Inamenode -Idatanode -Ijobs -Imount -c -o $@ $<

$(B)/obj/%.o: %.c | $(GEN_H)
	@mkdir -p $(dir $@)
	$(say) CC $<
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

$(LIB): $(LIB_O)
	@rm -f $@
	$(say) AR $@
	$(Q)ar rcs $@ $^

# The CLI's `caudal job` reads the jobtracker's status files with the jobs
# folder's own reader of that format (docs/decisions.md).
CLI_JOB_O = $(B)/obj/jobs/job_cli.o $(B)/obj/jobs/job_status.o
$(B)/obj/fs/cdl_cli.o: CFLAGS += -Ijobs
$(BIN)/caudal: $(B)/obj/fs/cdl_cli.o $(CLI_JOB_O) $(LIB)
	@mkdir -p $(BIN)
	$(say) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(FS_LD)

$(BIN)/caudal-namenode: $(B)/obj/namenode/nn_main.o $(NN_O) $(LIB)
	@mkdir -p $(BIN)
	$(say) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(ROCKS_LD) $(FS_LD)

$(BIN)/caudal-datanode: $(B)/obj/datanode/dn_main.o $(DN_O) $(LIB)
	@mkdir -p $(BIN)
	$(say) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(FS_LD)

$(BIN)/caudal-jobtracker: $(B)/obj/jobs/job_main_jt.o $(JOB_O) $(LIB)
	@mkdir -p $(BIN)
	$(say) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(FS_LD)

$(BIN)/caudal-tasktracker: $(B)/obj/jobs/job_main_tt.o $(JOB_O) $(LIB)
	@mkdir -p $(BIN)
	$(say) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(FS_LD)

$(BIN)/caudal-mount: $(B)/obj/mount/mnt_main.o $(MNT_O) $(LIB)
	@mkdir -p $(BIN)
	$(say) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(FUSE_LD) $(FS_LD)

$(BIN)/mount.caudal: $(BIN)/caudal-mount
	$(say) LN $@
	$(Q)ln -sf caudal-mount $@

$(B)/bench/nn_bench: $(B)/obj/tests/bench/nn_bench.o $(LIB)
	@mkdir -p $(dir $@)
	$(say) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(FS_LD)

# Unit tests: test_nn_* link the namenode's modules, test_dn_* the
# datanode's, test_job_* the jobs', test_mnt_* the mount's; all link libcaudal.
$(B)/tests/test_nn_%: $(B)/obj/tests/unit/test_nn_%.o $(NN_O) $(LIB)
	@mkdir -p $(dir $@)
	$(say) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(ROCKS_LD) $(FS_LD)
$(B)/tests/test_dn_%: $(B)/obj/tests/unit/test_dn_%.o $(DN_O) $(LIB)
	@mkdir -p $(dir $@)
	$(say) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(FS_LD)
$(B)/tests/test_job_%: $(B)/obj/tests/unit/test_job_%.o $(JOB_O) $(LIB)
	@mkdir -p $(dir $@)
	$(say) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(FS_LD)
$(B)/tests/test_mnt_%: $(B)/obj/tests/unit/test_mnt_%.o $(MNT_O) $(LIB)
	@mkdir -p $(dir $@)
	$(say) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(FUSE_LD) $(FS_LD)
# (the write-back creates' test talks to a namenode in its own process)
$(B)/tests/test_mnt_wb: $(B)/obj/tests/unit/test_mnt_wb.o $(MNT_O) $(NN_O) $(LIB)
	@mkdir -p $(dir $@)
	$(say) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(FUSE_LD) $(ROCKS_LD) $(FS_LD)
$(B)/tests/test_cdl_%: $(B)/obj/tests/unit/test_cdl_%.o $(LIB)
	@mkdir -p $(dir $@)
	$(say) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(FS_LD)

# The whole suite: unit binaries, then end-to-end scripts; the runner prints
# "N passed, N failed" last and fails if anything failed.
test: deps
	@$(MAKE) $(SILENT) --no-print-directory all
	@B=$(B) bash tests/run.sh $(T)

unit: all
	@B=$(B) bash tests/run.sh unit

up: deps
	@$(MAKE) $(SILENT) --no-print-directory all
	@$(BIN)/caudal up

down:
	@$(BIN)/caudal down

bench: all
	@B=$(B) bash tests/bench.sh

# The full namenode crash test (issue 8): 50 SIGKILLs of the namenode under a
# random workload, bounded to 15 minutes (CRASH_KILLS, CRASH_TIME, CRASH_SEED
# override; `make test` runs 5 kills as tests/e2e/crash_nn.sh).
crashtest: all
	@CRASH_KILLS=$${CRASH_KILLS:-50} CRASH_TIME=$${CRASH_TIME:-900} CRASH_ALLDN_SHARE=$${CRASH_ALLDN_SHARE:-0.1} B=$(B) bash tests/e2e/crash_nn.sh

# The multi-host test bed in full (issue 11): network namespaces joined by a
# switch with rack latency, more and bigger files, and a job whose maps must
# be data-local (`make test` runs the short version, tests/e2e/cluster_netns.sh).
test-cluster: all
	@CLUSTER_FULL=1 B=$(B) E2E_TIMEOUT=$${E2E_TIMEOUT:-600} bash tests/run.sh cluster_netns

asan:
	$(MAKE) B=build-asan OPT="-O1 -g -fno-omit-frame-pointer" SAN="-fsanitize=address,undefined" test

tsan:
	$(MAKE) B=build-tsan OPT="-O1 -g" SAN="-fsanitize=thread" test

LINT_SRC = $(wildcard fs/*.c fs/*.h namenode/*.c namenode/*.h datanode/*.c datanode/*.h jobs/*.c jobs/*.h mount/*.c mount/*.h)
lint: $(GEN_H)
	clang-format --dry-run --Werror $(LINT_SRC)
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability --inline-suppr \
		--suppress=missingIncludeSystem -DPROTOBUF_C_VERSION_NUMBER=1004001 -D_GNU_SOURCE -Ifs -I$(B)/gen $(filter %.c,$(LINT_SRC))
	clang-tidy --quiet --checks=-clang-analyzer-security.insecureAPI.DeprecatedOrUnsafeBufferHandling $(filter %.c,$(LINT_SRC)) -- $(CFLAGS_BASE) $(GRPC_CF) $(FUSE_CF) -Inamenode -Idatanode -Ijobs -Imount 2>/dev/null

# libFuzzer harnesses for what parses untrusted bytes: data-transfer
# headers and frames, job specs, config files, block access tokens, the
# shuffle server and its reply parser, exports and topology files, mount
# options and job status files. Each runs FUZZ_SECONDS.
FUZZ_SECONDS ?= 30
FUZZ_CC = clang
FUZZ_FLAGS = -g -O1 -fsanitize=fuzzer,address,undefined -std=gnu11 -D_GNU_SOURCE -I$(B)/gen -Ifs -Ijobs $(GRPC_CF)
FUZZ_BASE = fs/cdl_util.c fs/cdl_log.c fs/cdl_checksum.c
fuzz: $(GEN_H)
	@mkdir -p $(B)/fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $(B)/fuzz/dt_header tests/fuzz/fuzz_dt_header.c fs/cdl_dt.c $(FUZZ_BASE) $(GEN_C) $(FS_LD)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $(B)/fuzz/job_spec tests/fuzz/fuzz_job_spec.c jobs/job_spec.c $(FUZZ_BASE) $(FS_LD)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $(B)/fuzz/config tests/fuzz/fuzz_config.c fs/cdl_config.c $(FUZZ_BASE) $(FS_LD)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $(B)/fuzz/token tests/fuzz/fuzz_token.c fs/cdl_token.c $(FUZZ_BASE) $(GEN_C) $(FS_LD)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $(B)/fuzz/shuffle tests/fuzz/fuzz_shuffle.c jobs/job_shuffle.c jobs/job_sort.c jobs/job_spec.c jobs/job_counter.c fs/cdl_dt.c $(FUZZ_BASE) $(GEN_C) $(FS_LD)
	$(FUZZ_CC) $(FUZZ_FLAGS) -Inamenode -o $(B)/fuzz/files tests/fuzz/fuzz_files.c namenode/nn_exports.c namenode/nn_place.c fs/cdl_sec.c $(FUZZ_BASE) $(GEN_C) $(FS_LD)
	$(FUZZ_CC) $(FUZZ_FLAGS) -Imount -o $(B)/fuzz/text tests/fuzz/fuzz_text.c mount/mnt_opts.c jobs/job_status.c $(FUZZ_BASE) $(FS_LD)
	@for f in dt_header job_spec config token shuffle files text; do \
		echo "fuzzing $$f for $(FUZZ_SECONDS) s"; \
		mkdir -p $(B)/fuzz/corpus-$$f; \
		$(B)/fuzz/$$f -max_total_time=$(FUZZ_SECONDS) -max_len=70000 $(B)/fuzz/corpus-$$f >$(B)/fuzz/$$f.log 2>&1 \
			|| { tail -n 30 $(B)/fuzz/$$f.log; exit 1; }; \
		tail -n 1 $(B)/fuzz/$$f.log; \
	done

# `make install [PREFIX=/usr/local] [DESTDIR=]`: the programs in BINDIR;
# mount.caudal where mount(8) looks for helpers (/sbin), as a link to
# caudal-mount; one systemd unit per daemon (templates for the datanode and
# the tasktracker, run once per host or per instance); the example config
# (installed as caudal.conf only when there is none yet), topology and fstab
# examples and docs/deploy.md. Paths inside the units follow BINDIR and
# SYSCONFDIR. Nothing outside DESTDIR is touched.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SYSCONFDIR ?= /etc
UNITDIR ?= /lib/systemd/system
MOUNT_HELPER_DIR ?= /sbin
DOCDIR ?= $(PREFIX)/share/doc/caudal
INSTALL_PROGS = $(filter-out %/mount.caudal,$(PROGS))
install: $(PROGS)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MOUNT_HELPER_DIR) $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(SYSCONFDIR)/caudal $(DESTDIR)$(DOCDIR)
	install -m 0755 $(INSTALL_PROGS) $(DESTDIR)$(BINDIR)/
	ln -sfn $(BINDIR)/caudal-mount $(DESTDIR)$(MOUNT_HELPER_DIR)/mount.caudal
	for u in dist/systemd/*; do \
		sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
			-e 's|@DOCDIR@|$(DOCDIR)|g' $$u >$(DESTDIR)$(UNITDIR)/$${u##*/} && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$${u##*/} || exit 1; \
	done
	install -m 0644 dist/caudal.conf $(DESTDIR)$(SYSCONFDIR)/caudal/caudal.conf.example
	[ -e $(DESTDIR)$(SYSCONFDIR)/caudal/caudal.conf ] || \
		install -m 0644 dist/caudal.conf $(DESTDIR)$(SYSCONFDIR)/caudal/caudal.conf
	install -m 0644 dist/topology.example dist/fstab.example docs/deploy.md README.md \
		$(DESTDIR)$(DOCDIR)/

clean:
	rm -rf build build-asan build-tsan

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)
