"""ENUMER: decentralized ENUM on the Emercoin blockchain's Name-Value Storage.

Phone numbers map to SIP URIs through ``enum:<digits>:<N>`` records kept in NVS,
signed by verifiers, and served to PBXs by a DNS gateway.
"""

__version__ = "0.1.0"
