"""The edges readers, other sites and providers call: pages, the JSON API, embeds,
webhooks."""
