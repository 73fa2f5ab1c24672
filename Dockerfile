# linkplane-server: multi-stage, non-root. The build stage runs the same install steps as
# .ci/run (pip-installed uv, `uv sync --frozen`), so what CI proves is what the image contains.
FROM python:3.11-slim AS build
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PROJECT_ENVIRONMENT=/opt/linkplane
RUN python -m pip install --no-cache-dir "uv==0.13.8"
WORKDIR /src
COPY pyproject.toml uv.lock ./
COPY client client
COPY server server
COPY migrations migrations
# Production needs neither the dev tools nor the simulator: install the server package only.
RUN uv sync --frozen --no-dev --no-editable --package linkplane-server

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin linkplane
COPY --from=build /opt/linkplane /opt/linkplane
ENV PATH=/opt/linkplane/bin:$PATH \
    LINKPLANE_LISTEN=0.0.0.0:50051 \
    LINKPLANE_LOG_FORMAT=json
USER linkplane
EXPOSE 50051
# LINKPLANE_DATABASE_URL must be set; run `linkplane-server migrate` once per release.
ENTRYPOINT ["linkplane-server"]
CMD ["serve"]
