# The classifier service on Debian 12, in stages: a full Debian builds the server and the CLI
# with scripts/build.sh; a slim Debian runs them as the unprivileged user `classifier`; a third
# image, target fetch-data, holds the data fetcher and its Node.js, which the server never needs.
# Every stage installs its packages with scripts/install-deps.sh, the same script the README and
# CI use.
#
#   docker build -t classifier .
#   docker build --target fetch-data -t classifier-fetch-data .
#   docker run -p 50051:50051 -v classifier-data:/var/lib/classifier/data classifier
#
# or docker/compose.yaml, whose one-shot `fetch-data` service puts MNIST into the data volume
# (Fashion-MNIST is in the image: Debian's dataset-fashion-mnist). With podman, and where no
# registry can be reached, scripts/container.sh builds the same two images.
#
# The GPU variant is Debian 13 with its LibTorch 2.6 built for CUDA 12.4 (with NCCL); the same
# binaries pick cuda:0 by themselves (--device auto). It needs the NVIDIA Container Toolkit on
# the host, and building it fetches cuDNN from NVIDIA (see gpu-build below):
#
#   docker build --build-arg CLASSIFIER_VARIANT=gpu -t classifier:gpu .
#   docker run --gpus all -p 50051:50051 -v classifier-data:/var/lib/classifier/data classifier:gpu

# cpu or gpu: the pair of stages the final image comes from (BuildKit builds only that pair).
ARG CLASSIFIER_VARIANT=cpu
# The user both images run as, with a fixed id: the server and the fetcher share the data volume.
ARG CLASSIFIER_UID=10001

FROM debian:bookworm AS build
WORKDIR /src
# Dependencies first, in their own layer: editing the sources does not reinstall them.
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh build && rm -rf /var/lib/apt/lists/*
COPY . .
# The binaries, and the shared libraries they load gathered into /runtime-root.
RUN scripts/build.sh -DCLASSIFIER_BUILD_TESTS=OFF -DCLASSIFIER_BUILD_BENCH=OFF \
 && scripts/runtime-libs.sh /runtime-root build/server/classifier-server \
      build/client/classifier-cli build/distributed/classifier-rank build/distributed/classifier-worker

# Only the libraries the loader maps (scripts/runtime-libs.sh says why not the packages:
# Debian's libtorch1.13 would bring OpenCV, FFmpeg, Qt and GDAL, 1.39 GB in all), plus the
# runtime's data and certificates from install-deps.sh.
FROM debian:bookworm-slim AS runtime-cpu
COPY scripts/install-deps.sh /tmp/install-deps.sh
RUN /tmp/install-deps.sh runtime-data && rm -rf /var/lib/apt/lists/* /tmp/install-deps.sh
COPY --from=build /runtime-root/ /
RUN ldconfig
COPY --from=build /src/build/server/classifier-server /src/build/client/classifier-cli \
  /src/build/distributed/classifier-rank /src/build/distributed/classifier-worker /usr/local/bin/

# GPU: LibTorch with CUDA is in Debian's contrib (nvcc in non-free). Its nvidia-cudnn
# dependency is an installer whose postinst downloads cuDNN 9.0 from
# developer.download.nvidia.com: building this stage needs that host and accepts NVIDIA's cuDNN
# license (CLASSIFIER_CUDNN=download, see scripts/install-deps.sh). About 2.9 GB of packages.
FROM debian:trixie AS gpu-build
WORKDIR /src
RUN sed -i 's/^Components: main$/Components: main contrib non-free/' \
      /etc/apt/sources.list.d/debian.sources
COPY scripts/install-deps.sh scripts/install-deps.sh
# cuDNN is downloaded once, here; its libraries are kept aside for the runtime stage.
RUN CLASSIFIER_CUDNN=download scripts/install-deps.sh gpu-build && rm -rf /var/lib/apt/lists/* \
 && mkdir /opt/cudnn && cp -a /usr/lib/x86_64-linux-gnu/libcudnn*.so.9* /opt/cudnn/
COPY . .
RUN scripts/build.sh -DCLASSIFIER_BUILD_TESTS=OFF -DCLASSIFIER_BUILD_BENCH=OFF

FROM debian:trixie-slim AS runtime-gpu
RUN sed -i 's/^Components: main$/Components: main contrib non-free/' \
      /etc/apt/sources.list.d/debian.sources
COPY scripts/install-deps.sh /tmp/install-deps.sh
RUN CLASSIFIER_CUDNN=none /tmp/install-deps.sh gpu-runtime \
 && rm -rf /var/lib/apt/lists/* /tmp/install-deps.sh
COPY --from=gpu-build /opt/cudnn/ /usr/lib/x86_64-linux-gnu/
RUN ldconfig
COPY --from=gpu-build /src/build/server/classifier-server /src/build/client/classifier-cli \
  /src/build/distributed/classifier-rank /src/build/distributed/classifier-worker /usr/local/bin/
# What the NVIDIA Container Toolkit mounts in: the driver's CUDA library and nvidia-smi.
ENV NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility

# `classifier-fetch-data DATA_DIR` (see docker/compose.yaml): scripts/fetch-data.sh with curl,
# Node.js and npm, in an image of its own.
FROM debian:bookworm-slim AS fetch-data
ARG CLASSIFIER_UID
COPY scripts/install-deps.sh /tmp/install-deps.sh
RUN /tmp/install-deps.sh fetch-data && rm -rf /var/lib/apt/lists/* /tmp/install-deps.sh \
 && groupadd --system --gid "$CLASSIFIER_UID" classifier \
 && useradd --system --uid "$CLASSIFIER_UID" --gid classifier --create-home \
      --home-dir /home/classifier --shell /usr/sbin/nologin classifier \
 && install -d -o classifier -g classifier /var/lib/classifier/data
COPY scripts/fetch-data.sh /usr/local/bin/classifier-fetch-data
USER classifier
WORKDIR /home/classifier
VOLUME ["/var/lib/classifier/data"]
CMD ["classifier-fetch-data", "/var/lib/classifier/data"]

FROM runtime-${CLASSIFIER_VARIANT} AS runtime
ARG CLASSIFIER_UID
# The volume folders exist, owned by `classifier`, before the VOLUME line, so that a fresh
# named volume starts with that owner.
RUN groupadd --system --gid "$CLASSIFIER_UID" classifier \
 && useradd --system --uid "$CLASSIFIER_UID" --gid classifier --create-home \
      --home-dir /home/classifier --shell /usr/sbin/nologin classifier \
 && install -d -o classifier -g classifier /var/lib/classifier/state /var/lib/classifier/data
USER classifier
WORKDIR /home/classifier
VOLUME ["/var/lib/classifier/state", "/var/lib/classifier/data"]
# gRPC, the Prometheus metrics endpoint, and the web dashboard.
EXPOSE 50051 9464 8080
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
  CMD ["classifier-cli", "--server", "127.0.0.1:50051", "health"]
CMD ["classifier-server", "--listen", "0.0.0.0:50051", "--metrics_listen", "0.0.0.0:9464", \
     "--http_listen", "0.0.0.0:8080", \
     "--state_dir", "/var/lib/classifier/state", "--data_dir", "/var/lib/classifier/data"]
