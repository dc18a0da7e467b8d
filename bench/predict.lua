-- wrk script: POST /predict with one SST-2 sentence per request, cycling through a file.
-- Usage: wrk -t1 -c32 -d10s -s bench/predict.lua http://127.0.0.1:PORT -- sentences.txt [list]
-- With "list" the body is {"text": ["..."]} (a batchable BentoML API takes a list).
local sentences = {}
local index = 0
local as_list = false

local function json_string(s)
  return '"' .. s:gsub('\\', '\\\\'):gsub('"', '\\"') .. '"'
end

function init(args)
  local path = args[1] or "sentences.txt"
  as_list = args[2] == "list"
  for line in io.lines(path) do
    if #line > 0 then sentences[#sentences + 1] = line end
  end
  index = math.random(#sentences)
end

function request()
  index = index % #sentences + 1
  local text = json_string(sentences[index])
  local body = as_list and ('{"text": [' .. text .. ']}') or ('{"text": ' .. text .. '}')
  return wrk.format("POST", "/predict", {["Content-Type"] = "application/json"}, body)
end

function done(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "errors": %d, "status_errors": %d, ' ..
    '"p50_us": %d, "p95_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, errors, summary.errors.status,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
