--- Nothing lost, at what cost: reject mode (bad rows set aside) and
-- checkpointed loads (a ledger row committed with every chunk), against
-- plain COPY, in one run.
--
--   sluice --tmpdb bench/rejects.lua [rows] [runs]   (defaults: 1000000 5)
--
-- Rows (id bigint, host text, v float8, qty int CHECK (qty >= 0)), row i:
-- host = "host-%03d" % (i % 1000), v = i / 7, qty = i % 1000; a bad row
-- has qty = -1, which the server refuses (23514: the row goes the whole
-- way, then the chunk is settled), at evenly spread positions.
--
-- Methods, each a sluice.load into a fresh table:
--   plain COPY (on_error = "abort", the default) of the clean rows;
--   reject mode (on_error = "reject", rejects file) on the clean rows, and
--   on rows with 0.01% and 1% bad;
--   the same for copy_text, and server-side COPY FROM a binary file of the
--   clean rows (the server's own ceiling);
--   checkpointed loads (checkpoint = name) in chunks of 100,000 rows and
--   of 10 MB of values, the ledger reset before each run.
-- Each method's table is checked after its first run: count and sum(id)
-- of the good rows, and the rejects file has one line per bad row.  Runs
-- go round-robin, each after a CHECKPOINT; times are medians; ratios
-- compare medians from this same run.
local sluice = require "sluice"
local B = require "common"

local N = tonumber(arg[1]) or 1000000
local RUNS = tonumber(arg[2]) or 5

local db = sluice.connect()
db:exec("set client_min_messages = warning")
local datadir = db:query_one("show data_directory").data_directory
local workdir = datadir:match("^(.*)/[^/]*$")
local rejects = os.tmpname()

local hosts = {}
for i = 0, 999 do hosts[i] = ("host-%03d"):format(i) end

-- Rows 1..N with one bad row every `every` rows (nil: none).
local function rows(every)
  local i, row = 0, {}
  return function()
    i = i + 1
    if i > N then return nil end
    row[1], row[2], row[3] = i, hosts[i % 1000], i / 7
    row[4] = (every and i % every == math.floor(every / 2)) and -1 or i % 1000
    return row
  end
end

local function bad_count(every)
  if not every then return 0 end
  local n = 0
  for i = 1, N do if i % every == math.floor(every / 2) then n = n + 1 end end
  return n
end

local function reset()
  db:exec("drop table if exists bench_rej; create table bench_rej (id bigint, host text, "
          .. "v float8, qty int check (qty >= 0))")
end

local function load(strategy, every, reject, chunk, ck)
  return function()
    if ck then sluice.reset_checkpoint(db, "bench") end
    local s = sluice.load { db = db, table = "bench_rej", rows = rows(every), strategy = strategy,
                            on_error = reject and "reject" or nil, reject_chunk = chunk,
                            checkpoint = ck and "bench" or nil, checkpoint_rows = ck and ck.rows,
                            checkpoint_bytes = ck and ck.bytes,
                            rejects = reject and rejects or nil, quiet = true }
    assert(s.read == N and s.rejected == bad_count(every))
  end
end

local function sum_ids(every)
  local s = N * (N + 1) / 2
  if every then
    for i = 1, N do if i % every == math.floor(every / 2) then s = s - i end end
  end
  return s
end

local file_bin = workdir .. "/rejects_bench.bin"
local methods = {
  { name = "COPY binary, plain", run = load("copy_binary", nil, false),
    after = function()
      db:exec(("copy bench_rej to '%s' (format binary)"):format(file_bin))
      B.sh("chmod 644 " .. B.q(file_bin))
    end },
  { name = "COPY binary, reject mode, clean", run = load("copy_binary", nil, true) },
  { name = "COPY binary, reject mode, clean, chunks of 100,000", run = load("copy_binary", nil, true, 100000) },
  { name = "COPY binary, reject mode, 0.01% bad", every = 10000,
    run = load("copy_binary", 10000, true) },
  { name = "COPY binary, reject mode, 1% bad", every = 100, run = load("copy_binary", 100, true) },
  { name = "COPY binary, checkpointed, chunks of 100,000 rows",
    run = load("copy_binary", nil, false, nil, { rows = 100000 }) },
  { name = "COPY binary, checkpointed, chunks of 10 MB",
    run = load("copy_binary", nil, false, nil, { bytes = 10 * 1024 * 1024 }) },
  { name = "COPY text, plain", run = load("copy_text", nil, false) },
  { name = "COPY text, reject mode, clean", run = load("copy_text", nil, true) },
  { name = "COPY text, reject mode, 1% bad", every = 100, run = load("copy_text", 100, true) },
  { name = "server COPY binary file", server = true,
    run = function() db:exec(("copy bench_rej from '%s' (format binary)"):format(file_bin)) end },
}

print(("\n### Reject mode and checkpoints: %s rows (id bigint, host text, v float8, qty int CHECK), %d runs\n")
      :format(B.fmt(N), RUNS))
B.rounds { db = db, runs = RUNS, methods = methods, reset = reset,
  check = function(m)
    local d = db:query_one("select count(*)::int8 as n, sum(id)::float8 as s from bench_rej")
    local want = N - bad_count(m.every)
    assert(d.n == want, ("%s: expected %d rows, found %s"):format(m.name, want, tostring(d.n)))
    assert(d.s == sum_ids(m.every), m.name .. ": the table holds other rows than the good ones")
    if m.run ~= methods[#methods].run and m.name:find("reject") then
      local lines = 0
      for _ in sluice.read_rejects(rejects) do lines = lines + 1 end
      assert(lines == bad_count(m.every), m.name .. ": the rejects file has " .. lines .. " lines")
    end
    if m.after then m.after() end
  end }

local by = {}
for _, m in ipairs(methods) do by[m.name] = m end
local out = {}
for _, m in ipairs(methods) do
  local plain = m.name:find("^COPY text") and by["COPY text, plain"] or by["COPY binary, plain"]
  out[#out + 1] = { m.name, B.fmt(N / m.t), ("%.2f"):format(m.t),
                    ("%.2f×"):format(plain.t / m.t),
                    ("%.2f×"):format(by["server COPY binary file"].t / m.t),
                    m.server and "(server)" or ("%.2f"):format(m.cpu / N * 1e6) }
end
B.table({ "method", "rows/s", "seconds", "vs plain COPY (same format)", "vs server COPY binary file",
          "client CPU s / M rows" }, out)
os.remove(file_bin)
os.remove(rejects)
