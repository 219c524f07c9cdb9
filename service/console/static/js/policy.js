// The version policy in words. Known kinds get a sentence; a kind this page does not know yet is
// shown by its fields, so that a new policy appears as it is rather than not at all.

function percent(fraction) {
  return `${Number((fraction * 100).toPrecision(3))} %`;
}

function fields(policy) {
  return Object.entries(policy)
    .filter(([key, value]) => key !== "kind" && value !== null
      && !(Array.isArray(value) && value.length === 0))
    .map(([key, value]) => `${key} ${Array.isArray(value) ? value.join(", ") : value}`)
    .join(", ");
}

export function describePolicy(policy, aliases) {
  if (!policy) return "not read yet";
  const target = aliases[policy.alias];
  const alias = `${policy.alias} → ${target === undefined ? "not set" : `v${target}`}`;
  switch (policy.kind) {
    case "latest":
      return policy.latest === 1 ? "latest version" : `latest ${policy.latest} versions`;
    case "all":
      return "all versions";
    case "specific":
      return `versions ${policy.versions.join(", ")}`;
    case "alias":
      return `alias ${alias}`;
    case "canary": {
      const mirror = policy.mirror ? `, mirror ${percent(policy.mirror)}` : "";
      return `canary: v${policy.candidate} takes ${percent(policy.weight)}${mirror}; ${alias}`;
    }
    default:
      return `${policy.kind}: ${fields(policy)}`;
  }
}

// Tags shown beside a version: the aliases pointing at it, and "canary N %" for a candidate.
export function versionTags(version, policy, aliases) {
  const tags = Object.entries(aliases).filter(([, v]) => v === version).map(([name]) => name);
  if (policy && policy.kind === "canary" && policy.candidate === version) {
    tags.push(`canary ${percent(policy.weight)}`);
  }
  return tags;
}
