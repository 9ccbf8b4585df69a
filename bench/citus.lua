--- Loading into Citus: the metrics rows into a hash-distributed table (on
-- host, 32 shards) through the coordinator and through the workers,
-- against the same rows into a plain table, in one run.
--
--   sluice --tmpdb=citus:2 bench/citus.lua [rows] [runs]   (defaults: 1000000 3)
--
-- Row i (0-based): host = "host-%03d" % (i % 1000), ts = 1700000000 + i s,
-- v = i / 7, into (host text, ts timestamptz, v float8), by binary COPY
-- (sluice's copy_binary).  The ways:
--   plain, 1 stream:           a table of the coordinator that Citus does
--                              not manage: plain PostgreSQL;
--   plain, 2 streams:          two processes, each half the rows;
--   distributed, coordinator:  one stream through the coordinator, which
--                              routes each row to its shard;
--   distributed, coordinator, 2 streams: two processes through it;
--   distributed, both workers: two processes, each through one worker
--                              node (every node with synced metadata
--                              takes COPY into distributed tables).
-- Two streams are two sluice processes (this script run again as
-- `--part`), each loading rows [k * n / 2, (k + 1) * n / 2); the time is
-- the wall time until both are done.  Runs go round-robin; the table has
-- medians [range], rows/s and ratios against the plain single stream of
-- the same run; every way's table is checked (count and md5 of every row)
-- against the plain one.  The nodes are all on this machine, so they
-- share its cores: the figures say how Citus's routing costs, not how a
-- cluster of machines scales.
local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
package.path = HERE .. "/?.lua;" .. package.path
local sluice = require "sluice"

-- child: --part uri table from to
if arg[1] == "--part" then
  local db = sluice.connect(arg[2])
  local from, to = tonumber(arg[4]), tonumber(arg[5])
  local cp = db:copy(arg[3], { "host", "ts", "v" }, { format = "binary", quiet = true })
  for i = from, to - 1 do cp:row(("host-%03d"):format(i % 1000), 1700000000 + i, i / 7) end
  assert(cp:finish() == to - from)
  os.exit(0)
end

local B = require "common"
local N = tonumber(arg[1]) or 1000000
local RUNS = math.max(tonumber(arg[2]) or 3, 1)
local NODES = {}
for u in (os.getenv("SLUICE_NODES") or ""):gmatch("%S+") do NODES[#NODES + 1] = u end
if #NODES < 3 then
  io.stderr:write("bench/citus.lua: run it on a Citus cluster: sluice --tmpdb=citus:2 bench/citus.lua\n")
  os.exit(2)
end

local db = sluice.connect(NODES[1])
db:exec("set client_min_messages = warning")

local function parts(tbl, uris)
  local cmds = {}
  for k, uri in ipairs(uris) do
    local from, to = math.floor((k - 1) * N / #uris), math.floor(k * N / #uris)
    cmds[k] = ("%s %s --part %s %s %d %d & p%d=$!"):format(B.q(B.exe()), B.q(HERE .. "/citus.lua"),
                                                           B.q(uri), tbl, from, to, k)
  end
  local waits = {}
  for k = 1, #uris do waits[k] = "wait $p" .. k end
  B.sh(table.concat(cmds, "; ") .. "; " .. table.concat(waits, " && "))
end

local function one(tbl)
  return function()
    local cp = db:copy(tbl, { "host", "ts", "v" }, { format = "binary", quiet = true })
    for i = 0, N - 1 do cp:row(("host-%03d"):format(i % 1000), 1700000000 + i, i / 7) end
    assert(cp:finish() == N)
  end
end

local PLAIN = "plain PostgreSQL, 1 stream"
local METHODS = {
  { name = PLAIN, tbl = "bench_plain", run = one("bench_plain") },
  { name = "plain PostgreSQL, 2 streams", tbl = "bench_plain", child = true,
    run = function() parts("bench_plain", { NODES[1], NODES[1] }) end },
  { name = "distributed, through the coordinator", tbl = "bench_dist", run = one("bench_dist") },
  { name = "distributed, through the coordinator, 2 streams", tbl = "bench_dist", child = true,
    run = function() parts("bench_dist", { NODES[1], NODES[1] }) end },
  { name = "distributed, through both workers (1 stream each)", tbl = "bench_dist", child = true,
    run = function() parts("bench_dist", { NODES[2], NODES[3] }) end },
}

db:exec("drop table if exists bench_plain, bench_dist")
db:exec("create table bench_plain (host text, ts timestamptz, v float8)")
db:exec("create table bench_dist (host text, ts timestamptz, v float8)")
db:exec("select create_distributed_table('bench_dist', 'host', shard_count => 32)")

local HASH = "select count(*) as n, md5(string_agg(t::text, E'\\n' order by host, ts)) as h from %s t"
local ref
B.rounds({
  methods = METHODS, runs = RUNS, db = db,
  reset = function(m) db:exec("truncate " .. m.tbl) end,
  check = function(m)
    local h = db:query_one(HASH:format(m.tbl))
    assert(h.n == N, m.name .. ": " .. tostring(h.n) .. " rows")
    ref = ref or h.h
    assert(h.h == ref, m.name .. ": other table contents than the plain table's")
  end,
})
db:exec("drop table bench_plain, bench_dist")

local base
for _, m in ipairs(METHODS) do if m.name == PLAIN then base = m.t end end
print(("\n### Citus: %s metrics rows by binary COPY, a coordinator and 2 workers on one "
       .. "machine (medians of %d runs, range in brackets)\n"):format(B.fmt(N), RUNS))
local out = {}
for _, m in ipairs(METHODS) do
  local lo, hi = math.huge, -math.huge
  for _, t in ipairs(m.times) do lo, hi = math.min(lo, t), math.max(hi, t) end
  out[#out + 1] = { m.name, ("%.2f [%.2f–%.2f]"):format(m.t, lo, hi), B.fmt(N / m.t),
                    ("%.2f×"):format(base / m.t) }
end
B.table({ "way", "wall s", "rows/s", "vs plain, 1 stream" }, out)
