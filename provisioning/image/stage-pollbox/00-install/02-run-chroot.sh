#!/bin/bash -e
# Inside the image: the service accounts, pollbox in its own virtualenv with
# the Raspberry Pi extras, and the tidying a read-only root needs.

id pollbox >/dev/null 2>&1 || useradd --system --home-dir /var/lib/pollbox --shell /usr/sbin/nologin \
	--groups gpio,dialout,input,video pollbox
id pollbox-kiosk >/dev/null 2>&1 || useradd --system --create-home --home-dir /home/pollbox-kiosk \
	--shell /usr/sbin/nologin --groups video,render,input pollbox-kiosk
chown pollbox:pollbox /var/lib/pollbox
chmod 700 /var/lib/pollbox

python3 -m venv /opt/pollbox
/opt/pollbox/bin/pip install --no-cache-dir /tmp/pollbox-wheels/pollbox-*.whl"[${POLLBOX_PI_EXTRA:-pi},scan]"
ln -sfn /opt/pollbox/bin/pollbox /usr/local/bin/pollbox
ln -sfn /opt/pollbox/bin/pollbox-provision /usr/local/bin/pollbox-provision
rm -rf /tmp/pollbox-wheels

# Nothing may write to the root file system once it is read-only.
apt-get -y purge dphys-swapfile fake-hwclock || true
systemctl disable apt-daily.timer apt-daily-upgrade.timer man-db.timer || true
ln -sfn /run/NetworkManager/resolv.conf /etc/resolv.conf
