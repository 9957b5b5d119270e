# zapvoice: the provider service (`serve`, the default), the agent (`agent`) or the 4143 gateway (`gateway`).
# Models are fetched into the /models volume on first start (or mount a volume holding them); the data
# directory (service.data_dir: the token serve generates without one, and the call records) is the
# /var/lib/zapvoice volume.
# BASE: any Debian-like image with python3 >= 3.11 and its venv module. The default is pinned by version;
# docker/make-local-base.sh builds one without Docker Hub (--build-arg BASE=zapvoice-base:bookworm).
ARG BASE=python:3.11.14-slim-bookworm
FROM ${BASE}

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH \
    ZAPVOICE_HOST=0.0.0.0 ZAPVOICE_GATEWAY_HOST=0.0.0.0 ZAPVOICE_MODEL_DIR=/models \
    ZAPVOICE_DATA_DIR=/var/lib/zapvoice

# A venv: a Debian base has no pip outside one (and would refuse it: externally managed).
RUN python3 -m venv /opt/venv \
    && useradd --create-home --uid 10001 zapvoice \
    && mkdir -p /models /var/lib/zapvoice && chown zapvoice /models /var/lib/zapvoice

WORKDIR /app
# The dependencies alone first, from pyproject.toml: this layer is rebuilt only when they change, not on
# every source edit.
COPY pyproject.toml ./
RUN python3 -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY README.md models.txt ./
COPY zapvoice ./zapvoice
COPY providers ./providers
COPY agent ./agent
RUN pip install --no-deps . && rm -rf build *.egg-info

USER zapvoice
VOLUME ["/models", "/var/lib/zapvoice"]
EXPOSE 8000 4143
# `zapvoice health` checks the command this container runs (PID 1's) on that command's own port: 8000 for
# serve and agent, 4143 for gateway, or whatever its flags and ZAPVOICE_* variables say. The start period
# covers the first start's model download.
HEALTHCHECK --interval=30s --timeout=5s --start-period=300s --retries=3 CMD ["zapvoice", "health"]

ENTRYPOINT ["zapvoice"]
CMD ["serve"]
