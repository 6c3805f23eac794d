"""The ingress controller add-on: ingress-nginx's role, played by an HTTP reverse
proxy of ours (routing.py decides, proxy.py forwards, app.py watches and writes
status, __main__.py takes ingress-nginx's flags)."""
