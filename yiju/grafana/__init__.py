"""Grafana for Yiju: the dashboards as code (`dashboards`) and their delivery (`delivery`): upload with
grafana-client (`yiju grafana provision`) or files for Grafana's own provisioning (`yiju grafana export`)."""
