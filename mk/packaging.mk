# Packaging, deployment and example targets; included by the top-level
# Makefile. Each target's `## text` is its line in `make help`.
#
# Overridable: IMAGE, EXAMPLE_IMAGE, KIND_CLUSTER, DOCKER, KIND, KUBECTL,
# CLANG, PREFIX, DESTDIR, SYSTEMD_UNIT_DIR, BPFMAN_BIN, BPFMAN_VENV.

IMAGE ?= bpfman:dev
EXAMPLE_IMAGE ?= stats-reader:dev
KIND_CLUSTER ?= bpfman
DOCKER ?= docker
KIND ?= kind
KUBECTL ?= kubectl
CLANG ?= clang
PREFIX ?= /usr/local
DESTDIR ?=
SYSTEMD_UNIT_DIR ?= /lib/systemd/system
BPFMAN_BIN ?= $(or $(CARGO_TARGET_DIR),target)/release/bpfman
BPFMAN_VENV ?= $(HOME)/.cache/bpfman/venv
HADOLINT ?= $(firstword $(wildcard $(BPFMAN_VENV)/bin/hadolint) $(shell command -v hadolint 2>/dev/null))

BPF_ARCH_INCLUDE := /usr/include/$(shell uname -m)-linux-gnu
# (-fdebug-prefix-map, added per object below, keeps the checkout path out of the DWARF, so rebuilding
# in another directory gives the same object.)
BPF_CFLAGS := -O2 -g -target bpf -I$(BPF_ARCH_INCLUDE)

# The manifests name the image bpfman:dev; a different IMAGE is substituted
# into the kustomize output, so `make bpfman-deploy IMAGE=...` just works.
MANIFEST_IMAGE := bpfman:dev

.PHONY: bpf install-deps check-manifests lint-docker image example-image \
	kind-create kind-delete bpfman-deploy bpfman-logs bpfman-delete \
	example-deploy example-delete install uninstall

bpf: ## rebuild the committed BPF objects (examples/stats, the test fixtures in tests/bpf) and the uprobe target
	cd examples/stats && $(CLANG) $(BPF_CFLAGS) -fdebug-prefix-map=$(CURDIR)/examples/stats=. \
		-c stats.bpf.c -o stats.bpf.o
	$(MAKE) -C tests/bpf CLANG=$(CLANG)

install-deps: ## install build/test/check tools on Debian 12, as root (scripts/install-deps.sh)
	scripts/install-deps.sh

check-manifests: ## validate manifests/ and the example pod offline (strict schemas, kustomize build)
	scripts/check-manifests.sh

lint-docker: ## lint the Dockerfiles with hadolint (skipped when hadolint is not installed)
	@if [ -z "$(HADOLINT)" ]; then \
		echo "lint-docker: hadolint not installed (scripts/install-deps.sh puts it in $(BPFMAN_VENV)); skipped"; \
	else \
		echo "$(HADOLINT) Dockerfile examples/stats/Dockerfile"; \
		$(HADOLINT) Dockerfile examples/stats/Dockerfile && echo "lint-docker: OK"; \
	fi

image: ## build the bpfman container image (IMAGE, default bpfman:dev)
	$(DOCKER) build -t $(IMAGE) .

example-image: ## build the stats-reader example image (EXAMPLE_IMAGE, default stats-reader:dev)
	$(DOCKER) build -f examples/stats/Dockerfile -t $(EXAMPLE_IMAGE) .

kind-create: ## create a local kind cluster with bpffs and tracefs mounted into its nodes
	@if $(KIND) get clusters 2>/dev/null | grep -qx '$(KIND_CLUSTER)'; then \
		echo "kind cluster $(KIND_CLUSTER) already exists"; \
	else \
		$(KIND) create cluster --config deploy/kind-config.yaml --name $(KIND_CLUSTER); \
	fi

kind-delete: ## delete the local kind cluster
	$(KIND) delete cluster --name $(KIND_CLUSTER)

bpfman-deploy: image ## build the image, load it into kind and apply manifests/
	$(KIND) load docker-image $(IMAGE) --name $(KIND_CLUSTER)
	$(KUBECTL) kustomize manifests/ | sed 's|image: $(MANIFEST_IMAGE)$$|image: $(IMAGE)|' \
		| $(KUBECTL) apply -f -
	$(KUBECTL) -n bpfman rollout status daemonset/bpfman-daemon --timeout=180s

bpfman-logs: ## follow the bpfman daemon's logs on every node
	$(KUBECTL) logs -n bpfman -l app=bpfman -c bpfman -f --prefix --max-log-requests=20

bpfman-delete: ## remove everything manifests/ created (namespace, DaemonSet, CSIDriver, RBAC)
	$(KUBECTL) delete -k manifests/ --ignore-not-found

example-deploy: example-image ## build the stats-reader image, load it into kind and start the example pod
	$(KIND) load docker-image $(EXAMPLE_IMAGE) --name $(KIND_CLUSTER)
	sed 's|image: stats-reader:dev$$|image: $(EXAMPLE_IMAGE)|' examples/stats/pod.yaml \
		| $(KUBECTL) apply -f -
	@echo "follow it with: $(KUBECTL) logs -f stats-reader"

example-delete: ## delete the example pod
	$(KUBECTL) delete -f examples/stats/pod.yaml --ignore-not-found

install: ## install bpfman and its systemd units (PREFIX=/usr/local DESTDIR=; after cargo build --release)
	@test -x '$(BPFMAN_BIN)' || { \
		echo "install: $(BPFMAN_BIN) not found; run 'cargo build --release -p bpfman' first" >&2; exit 1; }
	install -D -m 0755 '$(BPFMAN_BIN)' '$(DESTDIR)$(PREFIX)/bin/bpfman'
	install -d -m 0755 '$(DESTDIR)$(SYSTEMD_UNIT_DIR)' '$(DESTDIR)/etc/bpfman'
	sed 's|/usr/local/bin/bpfman|$(PREFIX)/bin/bpfman|' deploy/systemd/bpfman.service \
		> '$(DESTDIR)$(SYSTEMD_UNIT_DIR)/bpfman.service'
	install -m 0644 deploy/systemd/bpfman.socket '$(DESTDIR)$(SYSTEMD_UNIT_DIR)/bpfman.socket'
	chmod 0644 '$(DESTDIR)$(SYSTEMD_UNIT_DIR)/bpfman.service'
	@echo "installed; then: systemctl daemon-reload && systemctl enable --now bpfman.socket (or bpfman.service)"

uninstall: ## remove what install put in place (stop the service first; /run/bpfman is left alone)
	rm -f '$(DESTDIR)$(PREFIX)/bin/bpfman' \
		'$(DESTDIR)$(SYSTEMD_UNIT_DIR)/bpfman.service' \
		'$(DESTDIR)$(SYSTEMD_UNIT_DIR)/bpfman.socket'
	-rmdir --ignore-fail-on-non-empty '$(DESTDIR)/etc/bpfman'
