module emostream.local/cluster-smoke

go 1.24
