# The lbctl image: lbctl and its pinned dependencies in a virtualenv under /opt/lbctl, on a
# Python 3.11 base, run as a non-root user.  Release builds pin the base by digest:
#   podman build --build-arg BASE_IMAGE=docker.io/library/python:3.11-slim@sha256:<digest> ...
# The base only needs python3 with the venv module (the test suite builds one from Debian).
ARG BASE_IMAGE=docker.io/library/python:3.11-slim

FROM ${BASE_IMAGE} AS build
# Where pip finds packages and which CA it trusts, for builds behind a mirror or a TLS-inspecting
# proxy (mount the CA file with --volume); the final stage sees neither.
ARG PIP_INDEX_URL
ARG PIP_CERT
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
RUN python3 -m venv /opt/lbctl
WORKDIR /src
# The dependencies first, exactly as pinned, in a layer that a change to lbctl's code reuses.
# Only prebuilt wheels: no stage has a compiler.
COPY constraints.txt ./
RUN /opt/lbctl/bin/pip install --only-binary=:all: --requirement constraints.txt
COPY pyproject.toml README.md ./
COPY lbctl ./lbctl
# lbctl itself, then pip check (every dependency present at a version lbctl accepts), then pip
# and setuptools leave the virtualenv: the final image has no installer.
RUN /opt/lbctl/bin/pip wheel --no-deps --wheel-dir /tmp/wheels . \
    && /opt/lbctl/bin/pip install --no-deps --no-index /tmp/wheels/lbctl-*.whl \
    && /opt/lbctl/bin/pip check \
    && /opt/lbctl/bin/pip uninstall --yes pip setuptools

FROM ${BASE_IMAGE}
COPY --from=build /opt/lbctl /opt/lbctl
RUN echo 'lbctl:x:65532:65532:lbctl:/nonexistent:/usr/sbin/nologin' >> /etc/passwd \
    && echo 'lbctl:x:65532:' >> /etc/group
ENV PATH=/opt/lbctl/bin:${PATH} PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/opt/lbctl/bin/lbctl"]
ARG VERSION=unknown
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
LABEL org.opencontainers.image.title="lbctl" \
      org.opencontainers.image.description="Bare-metal LoadBalancer controller: VIP IPAM in Vip custom resources and NetScaler ADC programming over NITRO" \
      org.opencontainers.image.source="https://github.com/lbctl/lbctl" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
