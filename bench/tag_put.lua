-- wrk script for the tag-update benchmark (bench/cluster.sh): every request moves a tag between
-- two manifests already in the repository, so each one is a real, committed tag change.
-- Environment: MANIFEST_A and MANIFEST_B (files holding the two manifests), REPO, TAGS (how many
-- distinct tags the load spreads over). Prints one WRKJSON line at the end.
local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end

local bodies = { slurp(os.getenv("MANIFEST_A")), slurp(os.getenv("MANIFEST_B")) }
local repo = os.getenv("REPO")
local tags = tonumber(os.getenv("TAGS") or "64")
local headers = { ["Content-Type"] = "application/vnd.oci.image.manifest.v1+json" }
local counter = 0

init = function(args)
  -- Spread threads over different tags and starting manifests.
  counter = math.random(0, 1000000)
end

request = function()
  counter = counter + 1
  local path = string.format("/v2/%s/manifests/t%d", repo, counter % tags)
  return wrk.format("PUT", path, headers, bodies[(counter % 2) + 1])
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"non2xx":%d,"socket_errors":%d,' ..
    '"req_per_s":%.1f,"p50_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,"mean_ms":%.3f}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    latency.mean / 1000))
end
