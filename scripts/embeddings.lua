--- Documents and their embeddings: each document is cut into chunks and
-- every chunk gets a unit-length float vector (1536 dimensions by
-- default, like OpenAI's text-embedding-3-small), stored as real[].
-- Generated reproducibly from a seed and loaded by binary COPY with the
-- drop-indexes / load / rebuild pattern: the btree index on
-- embeddings(document_id) is dropped before the load and built once at
-- the end, which is faster than maintaining it row by row.
--
--   sluice --tmpdb scripts/embeddings.lua [documents] [chunks_per_doc]
--          [--dim D] [--seed N] [--schema NAME]
--   (defaults: 200 documents, 1 to 4 chunks each (drawn), dim 1536, seed 1;
--   --help lists the options)
--
-- Prints the row counts and the time of each phase.
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
local args = cli:parse()
local seed, schema, dim = args.seed, args.schema, args.dim
local N_DOCS, CHUNKS = args.documents or 200, args.chunks_per_doc

local db = sluice.connect()
db:exec("SET client_min_messages = warning")
if schema then
  db:exec("CREATE SCHEMA IF NOT EXISTS " .. db:quote_ident(schema))
  db:exec("SET search_path = " .. db:quote_ident(schema))
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
    { "embedding", "real[] not null" },
  },
  defaults = { model = "synthetic-" .. dim },
  validate = function(e) return #e.embedding == dim, "wrong dimension" end,
}

-- chunks of document d: a pure function of d, so documents and
-- embeddings agree without storing anything
local function chunks_of(d)
  return CHUNKS or gc:at(d):int(1, 4)
end

sluice.model.create_all(db, { Embedding, Document }, { drop = true })
db:exec("CREATE INDEX embeddings_document_id_idx ON embeddings (document_id)")

local timings = {}
local function phase(name, fn)
  local t0 = now()
  local r = fn()
  timings[#timings + 1] = ("%-22s %8.3f s"):format(name, now() - t0)
  return r
end

phase("drop index", function()
  db:exec("DROP INDEX embeddings_document_id_idx")
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
    return Embedding:new { document_id = d, chunk = c, embedding = r:vector(dim, vec) }
  end, { format = "binary" })
end)

phase("rebuild index", function()
  db:exec("CREATE INDEX embeddings_document_id_idx ON embeddings (document_id)")
end)
db:exec("ANALYZE documents; ANALYZE embeddings")

print(("documents:  %d"):format(n_docs))
print(("embeddings: %d (dim %d)"):format(n_emb, dim))
for _, t in ipairs(timings) do io.stderr:write(t, "\n") end
