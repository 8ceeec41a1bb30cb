#!/usr/bin/env bash
# Entry point of the MariaDB image built from Debian's packages. On an empty data folder it
# creates the system tables, gives root (from any host) MARIADB_ROOT_PASSWORD and creates
# MARIADB_DATABASE, as the official mariadb image does; then it runs the command, mariadbd.
set -euo pipefail

socket=/run/mysqld/init.sock

sql_string() { # $1 quoted as an SQL string literal
  local value="${1//\\/\\\\}"
  printf "'%s'" "${value//\'/\\\'}"
}

initialize() {
  : "${MARIADB_ROOT_PASSWORD:?set MARIADB_ROOT_PASSWORD (the data folder is empty)}"
  mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db --auth-root-authentication-method=normal >/dev/null
  mariadbd --skip-networking --socket="${socket}" &
  local pid=$!
  for _ in $(seq 1 60); do
    mariadb-admin --socket="${socket}" ping >/dev/null 2>&1 && break
    sleep 1
  done
  local password database
  password="$(sql_string "${MARIADB_ROOT_PASSWORD}")"
  database="${MARIADB_DATABASE:-}"
  # Read from standard input, so the password never appears in a process list or log.
  {
    # mariadb-install-db also makes password-less root@127.0.0.1, ::1 and the host name.
    echo "DROP USER IF EXISTS 'root'@'127.0.0.1', 'root'@'::1', 'root'@$(sql_string "$(uname -n)");"
    echo "ALTER USER 'root'@'localhost' IDENTIFIED BY ${password};"
    echo "CREATE USER 'root'@'%' IDENTIFIED BY ${password};"
    echo "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
    if [ -n "${database}" ]; then
      echo "CREATE DATABASE IF NOT EXISTS \`${database//\`/\`\`}\` CHARACTER SET utf8mb4;"
    fi
  } | mariadb --socket="${socket}" -uroot
  MYSQL_PWD="${MARIADB_ROOT_PASSWORD}" mariadb-admin --socket="${socket}" -uroot shutdown
  wait "${pid}"
}

# Options alone (`command: ["--character-set-server=utf8mb4"]`) are options of mariadbd.
if [ "${1:0:1}" = "-" ]; then
  set -- mariadbd "$@"
fi
if [ "$1" = mariadbd ] && [ ! -d /var/lib/mysql/mysql ]; then
  initialize
fi
exec "$@"
