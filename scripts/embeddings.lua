--- Documents and their embeddings: each document is cut into chunks and
-- every chunk gets a unit-length float vector (1536 dimensions by
-- default, like OpenAI's text-embedding-3-small), stored as pgvector's
-- vector(D) with an HNSW index (vector_cosine_ops) - or as real[] when
-- the server has no pgvector, or with --type real[].  The vectors gather
-- around 50 centroids (g:clustered), so the index has neighbours to
-- find.  Generated reproducibly from a seed and loaded by binary COPY
-- with the drop-indexes / load / rebuild pattern: the HNSW index and the
-- btree on embeddings(document_id) are dropped before the load and built
-- once at the end, which is faster than maintaining them row by row.
--
--   sluice --tmpdb scripts/embeddings.lua [documents] [chunks_per_doc]
--          [--dim D] [--seed N] [--schema NAME] [--type vector|real[]]
--          [--compare ROWS]
--   (defaults: 200 documents, 1 to 4 chunks each (drawn), dim 1536, seed 1;
--   --help lists the options)
--
-- Prints the row counts and the time of each phase.  --compare ROWS then
-- loads ROWS embeddings again by row-by-row INSERT (a sample), multi-row
-- INSERT, COPY text and COPY binary, each with the indexes in place and
-- with drop-and-rebuild (sluice.compare, on copies of the table), and
-- prints the table, the chart and the index build times: the lesson's
-- "with indexes vs drop and rebuild", on this machine.
local sluice = require "sluice"

local cli = sluice.args.parser("embeddings.lua",
  "Generates documents cut into chunks, each with a unit-length embedding vector, and "
  .. "loads them by binary COPY (index dropped during the load, rebuilt after).")
cli:argument("documents", "How many documents (default 200)."):args("?"):convert(sluice.args.integer(1))
cli:argument("chunks_per_doc", "Chunks per document (default: 1 to 4, drawn per document)."):args("?")
  :convert(sluice.args.integer(1))
cli:option("--dim", "Dimensions of each vector.", "1536"):argname("D"):convert(sluice.args.integer(1))
cli:option("--seed", "The seed: the same seed gives the same rows.", "1"):argname("N")
  :convert(sluice.args.integer())
cli:option("--schema", "Create the tables in this schema (created if missing)."):argname("NAME")
cli:option("--type", "The embedding column's type: vector (pgvector, with an HNSW index; the "
           .. "default when the server has pgvector) or real[]."):argname("TYPE")
  :choices { "vector", "real[]" }
cli:option("--compare", "Then compare load strategies with indexes in place and with "
           .. "drop-and-rebuild, loading ROWS embeddings each."):argname("ROWS")
  :convert(sluice.args.integer(1))
local args = cli:parse()
local seed, schema, dim = args.seed, args.schema, args.dim
local N_DOCS, CHUNKS = args.documents or 200, args.chunks_per_doc

local db = sluice.connect()
db:exec("SET client_min_messages = warning")
local have_vector = db:query_one("select 1 as x from pg_available_extensions where name = 'vector'")
local vtype = args.type or (have_vector and "vector" or "real[]")
if vtype == "vector" then
  if not have_vector then
    io.stderr:write("embeddings.lua: this PostgreSQL has no pgvector (install it, or use --type real[])\n")
    os.exit(1)
  end
  db:exec("CREATE EXTENSION IF NOT EXISTS vector")
end
local ext_schema = db:query_one([[select n.nspname as s from pg_extension e
  join pg_namespace n on n.oid = e.extnamespace where e.extname = 'vector']])
if schema then
  db:exec("CREATE SCHEMA IF NOT EXISTS " .. db:quote_ident(schema))
  db:exec("SET search_path = " .. db:quote_ident(schema)
          .. (ext_schema and (", " .. db:quote_ident(ext_schema.s)) or ""))
end

local ffi = require "ffi"
pcall(ffi.cdef, "typedef struct { long tv_sec; long tv_nsec; } sl_timespec; int clock_gettime(int, sl_timespec *);")
local ts = ffi.new("sl_timespec")
local function now()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local g = sluice.gen(seed)
local gd, gc, ge = g:stream("documents"), g:stream("chunks"), g:stream("embeddings")

local Document = sluice.model {
  table = "documents",
  columns = {
    { "id", "bigint primary key" }, { "title", "text not null" },
    { "body", "text not null" }, { "created_at", "timestamptz not null" },
    { "chunk_count", "int not null" },
  },
}

local Embedding = sluice.model {
  table = "embeddings",
  columns = {
    { "document_id", "bigint not null references documents(id)" },
    { "chunk", "int not null" }, { "model", "text not null" },
    { "embedding", (vtype == "vector" and ("vector(%d)"):format(dim) or "real[]") .. " not null" },
  },
  defaults = { model = "synthetic-" .. dim },
  validate = function(e) return #e.embedding == dim, "wrong dimension" end,
}
local CLUSTERS, NOISE = 50, 0.35

-- chunks of document d: a pure function of d, so documents and
-- embeddings agree without storing anything
local function chunks_of(d)
  return CHUNKS or gc:at(d):int(1, 4)
end

sluice.model.create_all(db, { Embedding, Document }, { drop = true })
local INDEXES = { "CREATE INDEX embeddings_document_id_idx ON embeddings (document_id)" }
if vtype == "vector" then
  INDEXES[2] = "CREATE INDEX embeddings_hnsw_idx ON embeddings USING hnsw (embedding vector_cosine_ops)"
end
for _, ix in ipairs(INDEXES) do db:exec(ix) end

local timings = {}
local function phase(name, fn)
  local t0 = now()
  local r = fn()
  timings[#timings + 1] = ("%-22s %8.3f s"):format(name, now() - t0)
  return r
end

phase("drop indexes", function()
  db:exec("DROP INDEX embeddings_document_id_idx")
  if vtype == "vector" then db:exec("DROP INDEX embeddings_hnsw_idx") end
end)

local n_docs = phase("load documents", function()
  return Document:save_all(db, gd:rows(1, N_DOCS, function(r, i)
    return Document:new { id = i, title = r:text(20, 60), body = r:text(200, 2000),
                          created_at = r:timestamp("2020-01-01", "2025-01-01"),
                          chunk_count = chunks_of(i) }
  end), { format = "binary" })
end)

local n_emb = phase("load embeddings", function()
  -- one vector table reused for every row: COPY encodes it immediately
  local vec = {}
  local d, c, n = 1, 0, chunks_of(1)
  return Embedding:save_all(db, function()
    c = c + 1
    if c > n then
      d, c = d + 1, 1
      if d > N_DOCS then return nil end
      n = chunks_of(d)
    end
    -- the embeddings stream is indexed by (document, chunk): chunk < 1000
    local r = ge:at(d * 1000 + c)
    return Embedding:new { document_id = d, chunk = c,
                           embedding = r:clustered(CLUSTERS, dim, NOISE, vec) }
  end, { format = "binary" })
end)

phase("rebuild indexes", function()
  for _, ix in ipairs(INDEXES) do db:exec(ix) end
end)
db:exec("ANALYZE documents; ANALYZE embeddings")

print(("documents:  %d"):format(n_docs))
print(("embeddings: %d (dim %d, %s)"):format(n_emb, dim, vtype))
for _, t in ipairs(timings) do io.stderr:write(t, "\n") end

if args.compare then
  -- the same embeddings by every way to load them, each into a copy of
  -- the table with its indexes (sluice.compare: CREATE TABLE ... LIKE
  -- ... INCLUDING ALL), once with the indexes in place, once dropped
  -- and rebuilt; a row is a pure function of its number
  local n = args.compare
  local rows = function(i)
    local r = ge:at(1e9 + i)
    return math.floor((i - 1) / 4) + 1, (i - 1) % 4 + 1, "synthetic-" .. dim, (r:clustered(CLUSTERS, dim, NOISE))
  end
  local strategies = {}
  for _, st in ipairs { "rowwise_tx", "batch", "copy_text", "copy_binary" } do
    strategies[#strategies + 1] = { st, label = st .. " (indexes in place)" }
    strategies[#strategies + 1] = { st, drop_indexes = true, label = st .. " (drop, load, rebuild)" }
  end
  local res = sluice.compare { db = db, table = "embeddings", n = n, rows = rows,
                               strategies = strategies, sample = math.min(n, 200) }
  print()
  print("| strategy | load s | index build s | total s |")
  print("|---|---:|---:|---:|")
  local total = {}
  for _, r in ipairs(res) do
    print(("| %s | %.2f | %.2f | %.2f |"):format(r.label, r.seconds - r.index_seconds,
                                                r.index_seconds, r.seconds))
    total[r.label] = r.seconds
  end
  local with = total["copy_binary (indexes in place)"]
  local rebuilt = total["copy_binary (drop, load, rebuild)"]
  print(("\nCOPY binary: with indexes %.2f s, drop-and-rebuild %.2f s: %.1fx"):format(
    with, rebuilt, with / rebuilt))
end
