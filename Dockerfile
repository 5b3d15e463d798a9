# One image recipe for every service: docker build --build-arg SERVICE=giftcode-svc .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p giftcode-svc -p wallet-svc -p gateway-svc

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/platform --create-home platform
ARG SERVICE
COPY --from=build /src/target/release/${SERVICE} /usr/local/bin/service
USER platform
WORKDIR /var/lib/platform
ENTRYPOINT ["/usr/local/bin/service"]
