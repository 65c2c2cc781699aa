#!/bin/sh
# certbot deploy hook for wakeproxy when certbot runs on the host (docs/deploy.md): after a
# certificate is issued or renewed, let the `wakeproxy` group read it (the proxy runs as that
# user, or in a container given that group), then tell the proxy to reload.
#
#   sudo install -D -m 0755 deploy/certbot-deploy-hook.sh /etc/letsencrypt/renewal-hooks/deploy/wakeproxy
#
# certbot runs the hooks in that directory after every renewal (`certbot renew`, which
# Debian's certbot.timer runs twice a day). They do not run for `certbot certonly`: pass the
# same path there with --deploy-hook (certbot then runs it once per renewal, not twice).
set -eu

group="${WAKEPROXY_GROUP:-wakeproxy}"
le="${WAKEPROXY_LETSENCRYPT_DIR:-/etc/letsencrypt}"

for dir in "$le/live" "$le/archive"; do
    [ -d "$dir" ] || continue
    chgrp -R "$group" "$dir"
    chmod -R g+rX,o-rwx "$dir" # directories 0750, files (the private keys too) 0640
done

if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet wakeproxy 2>/dev/null; then
    systemctl reload wakeproxy
    echo "wakeproxy: certificates readable by group $group; systemctl reload wakeproxy done"
elif command -v docker >/dev/null 2>&1 &&
    [ "$(docker inspect -f '{{.State.Running}}' wakeproxy 2>/dev/null)" = true ]; then
    docker kill --signal HUP wakeproxy >/dev/null
    echo "wakeproxy: certificates readable by group $group; sent SIGHUP to the wakeproxy container"
else
    echo "wakeproxy: certificates readable by group $group; no running wakeproxy to reload"
fi
