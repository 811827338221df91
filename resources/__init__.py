"""What a community has for a bad day (CONTRACT §13): supplies and their ledger, shelters and their
occupancy, the vulnerable residents' door knocks, and the alerts about them."""
