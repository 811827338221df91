#!/bin/sh
# From the demo to the secure docker-compose stack (docs/security.md), in one go:
#   1. broker accounts and ACL for the site's devices and the service (deploy/mosquitto/accounts/);
#   2. a CA and the broker's TLS certificate (deploy/mosquitto/certs/), unless they exist;
#   3. the service's broker password in .env (CB_MQTT_PASSWORD, read by docker-compose.yml), and for
#      InfluxDB 2.x or 3 Core (docker-compose.influxdb2.yml, docker-compose.influxdb3.yml) the store's
#      token (CB_INFLUX_TOKEN) and 2.x's admin password (INFLUXDB2_ADMIN_PASSWORD);
#   4. every public example token and webhook secret in deploy/cbrain/site.yaml (and the cluster stack's
#      cluster-site.yaml, alike) replaced by a random one
#      (the new API tokens are printed once; give each to its holder, each webhook secret to its receiver).
# Run it from the repository's top directory; running it again keeps passwords (ROTATE=1 renews them).
# BROKER_HOST names the host devices connect to (the server certificate's name), default localhost.
set -eu
cd "$(dirname "$0")/.."
SITE=deploy/cbrain/site.yaml
CLUSTER_SITE=deploy/cbrain/cluster-site.yaml
ACCOUNTS=deploy/mosquitto/accounts
CERTS=deploy/mosquitto/certs
BROKER_HOST=${BROKER_HOST:-localhost}

if command -v cbrain >/dev/null 2>&1; then CBRAIN=cbrain; else CBRAIN="python3 -m app.cli"; fi

$CBRAIN mqtt provision --config "$SITE" --out "$ACCOUNTS" ${ROTATE:+--rotate}

if [ ! -f "$CERTS/server.crt" ]; then
    umask 077
    openssl req -x509 -newkey rsa:3072 -nodes -days 3650 -subj "/CN=community brain broker CA" \
        -keyout "$CERTS/ca.key" -out "$CERTS/ca.crt"
    openssl req -newkey rsa:3072 -nodes -subj "/CN=$BROKER_HOST" -keyout "$CERTS/server.key" -out "$CERTS/server.csr"
    printf 'subjectAltName=DNS:%s,DNS:mosquitto,DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' \
        "$BROKER_HOST" > "$CERTS/server.ext"
    openssl x509 -req -in "$CERTS/server.csr" -CA "$CERTS/ca.crt" -CAkey "$CERTS/ca.key" -CAcreateserial \
        -days 825 -extfile "$CERTS/server.ext" -out "$CERTS/server.crt"
    rm -f "$CERTS/server.csr" "$CERTS/server.ext"
    chmod 0644 "$CERTS/ca.crt" "$CERTS/server.crt"
    echo "$CERTS: CA and server certificate for $BROKER_HOST; move ca.key somewhere safe"
fi

# The service's own row of credentials.csv (its device_id is mqtt.client_id, cbrain-ingest).
password=$(awk -F, '$1 == "cbrain-ingest" {print $3}' "$ACCOUNTS/credentials.csv")
umask 077
if [ -f .env ] && grep -q '^CB_MQTT_PASSWORD=' .env; then
    sed -i "s|^CB_MQTT_PASSWORD=.*|CB_MQTT_PASSWORD=$password|" .env
else
    echo "CB_MQTT_PASSWORD=$password" >> .env
fi
# The InfluxDB 2.x / 3 Core token (3 requires the apiv3_ prefix, 2.x takes any string) and 2.x's admin
# password: written once and kept, ROTATE=1 or not, since a store takes them only at its first start
# (docs/storage.md says how to change them in a running one).
if ! grep -q '^CB_INFLUX_TOKEN=' .env; then
    echo "CB_INFLUX_TOKEN=apiv3_$(openssl rand -hex 32)" >> .env
fi
if ! grep -q '^INFLUXDB2_ADMIN_PASSWORD=' .env; then
    echo "INFLUXDB2_ADMIN_PASSWORD=$(openssl rand -hex 16)" >> .env
fi

# Public example secrets out of the site file: each example-token-*/example-secret-* gets a random value.
if grep -qE 'example-(token|secret)-' "$SITE"; then
    echo "new API tokens (shown once; the site file now holds them, replace with token_sha256 lines from"
    echo "\`cbrain token new\` to keep only digests):"
    for old in $(grep -oE 'example-(token|secret)-[a-z0-9-]+' "$SITE" | sort -u); do
        new=$(openssl rand -hex 24)
        sed -i "s|\b$old\b|$new|g" "$SITE" "$CLUSTER_SITE"
        case "$old" in example-token-*) echo "  ${old#example-token-}: $new" ;; esac
    done
    echo "webhook secrets replaced in $SITE: give each receiver its recipient's new secret"
fi

# The containers read these files as their own users: mosquitto (uid 1883) the password file, ACL and
# key; the simulator (uid 10001) credentials.csv. Only root can hand files to other users.
if [ "$(id -u)" = 0 ]; then
    chown 1883:1883 "$ACCOUNTS/passwd" "$ACCOUNTS/acl" "$CERTS/server.key"
    chown 10001:10001 "$ACCOUNTS/credentials.csv"
else
    echo "then, as root: chown 1883:1883 $ACCOUNTS/passwd $ACCOUNTS/acl $CERTS/server.key" \
         "&& chown 10001:10001 $ACCOUNTS/credentials.csv"
fi
echo "ready: docker compose up -d --build"
