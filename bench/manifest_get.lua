-- wrk script for the manifest-GET-by-tag benchmark (bench/run.sh, bench/cluster.sh).
-- Sends an OCI Accept header and prints one machine-readable WRKJSON line at the end.
-- With REPOS set (space-separated repository names), requests rotate over
-- /v2/<repo>/manifests/latest of those repositories instead of fetching the URL's path.
wrk.method = "GET"
wrk.headers["Accept"] = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"

local repos = {}
for repo in string.gmatch(os.getenv("REPOS") or "", "%S+") do
  repos[#repos + 1] = "/v2/" .. repo .. "/manifests/latest"
end
if #repos > 0 then
  local counter = 0
  init = function(args)
    counter = math.random(0, #repos - 1)
  end
  request = function()
    counter = counter + 1
    return wrk.format(nil, repos[(counter % #repos) + 1])
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"non2xx":%d,"socket_errors":%d,' ..
    '"req_per_s":%.1f,"p50_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,"mean_ms":%.3f}\n',
    summary.requests, summary.duration, summary.bytes, e.status,
    e.connect + e.read + e.write + e.timeout,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    latency.mean / 1000))
end
