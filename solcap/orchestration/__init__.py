"""Jobs over hosts: runbooks checked and run on one host, fleets of hosts in
one process or many, and the one outcome vocabulary they all report in.
"""
