# zapvoice: the provider service (`serve`, the default) or the agent (`agent`) in a slim image.
# Models are fetched into the /models volume on first start (or mount a volume holding them).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    ZAPVOICE_HOST=0.0.0.0 ZAPVOICE_MODEL_DIR=/models ZAPVOICE_AGENT_RECORD_DIR=/calls

RUN useradd --create-home --uid 10001 zapvoice && mkdir /models /calls && chown zapvoice /models /calls

WORKDIR /app
COPY pyproject.toml README.md models.txt ./
COPY zapvoice ./zapvoice
COPY providers ./providers
COPY agent ./agent
RUN pip install .

USER zapvoice
VOLUME ["/models", "/calls"]
EXPOSE 8000 4143
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"

ENTRYPOINT ["zapvoice"]
CMD ["serve"]
