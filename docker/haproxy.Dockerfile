# HAProxy from Debian 12's own package, with docker/haproxy.cfg: the load balancer of
# docker/replicas.compose.yaml.
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends haproxy \
 && rm -rf /var/lib/apt/lists/*
COPY haproxy.cfg /etc/haproxy/haproxy.cfg
USER haproxy
EXPOSE 50051
CMD ["haproxy", "-db", "-f", "/etc/haproxy/haproxy.cfg"]
