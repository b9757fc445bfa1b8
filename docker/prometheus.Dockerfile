# Prometheus from Debian 12's own package (2.42, the version docker/compose.yaml pins for
# prom/prometheus), laid out like the official image: the binary as the entrypoint, data in
# /prometheus, an unprivileged user. For machines that cannot pull prom/prometheus; used by
# docker/compose.local.yaml.
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o prometheus -g prometheus /prometheus
USER prometheus
WORKDIR /prometheus
VOLUME ["/prometheus"]
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
