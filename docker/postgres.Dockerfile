# PostgreSQL 15 from Debian 12's own package, with the environment contract of the official
# postgres image that docker/replicas.compose.yaml relies on (POSTGRES_USER, POSTGRES_PASSWORD,
# POSTGRES_DB; data in /var/lib/postgresql/data, initialised on first start). For machines
# that cannot pull postgres:15-bookworm; used by docker/replicas.compose.local.yaml.
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o postgres -g postgres -m 700 /var/lib/postgresql/data \
 && install -d -o postgres -g postgres /var/run/postgresql
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
USER postgres
VOLUME ["/var/lib/postgresql/data"]
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["postgres-entrypoint"]
CMD ["postgres"]
