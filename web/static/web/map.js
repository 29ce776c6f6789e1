/* The customer's map: Leaflet (vendored, so it loads offline) over OpenStreetMap tiles.
 *
 * Without tiles (offline) the pins still show on a plain background; without Leaflet at all
 * the map hides and the page works from its lists.
 */
(function () {
  "use strict";

  const TILES = "https://tile.openstreetmap.org/{z}/{x}/{y}.png";
  const KM_PER_DEGREE = 111.32;
  const GOLDEN_ANGLE = 137.508;

  /* A point `km` from (lat, lng) at `bearing` degrees. */
  function offset(lat, lng, km, bearing) {
    const rad = (bearing * Math.PI) / 180;
    return [
      lat + (km * Math.cos(rad)) / KM_PER_DEGREE,
      lng + (km * Math.sin(rad)) / (KM_PER_DEGREE * Math.cos((lat * Math.PI) / 180)),
    ];
  }

  function pin(color, label) {
    return window.L.divIcon({
      className: "pin pin-" + color,
      html: "<span>" + label + "</span>",
      iconSize: [28, 28],
      iconAnchor: [14, 14],
    });
  }

  function create(elementId, noteId, center) {
    const element = document.getElementById(elementId);
    const note = document.getElementById(noteId);
    const noop = { setMe() {}, setProviders() {}, setJob() {}, setProviderLive() {}, onClick() {} };
    if (!window.L) {
      element.hidden = true;
      note.textContent = "The map could not load; the provider list below has everything.";
      return noop;
    }
    const L = window.L;
    const map = L.map(element, { zoomControl: true }).setView(center, 12);
    let tilesFailed = false;
    L.tileLayer(TILES, { maxZoom: 19, attribution: "© OpenStreetMap contributors" })
      .on("tileerror", function () {
        if (tilesFailed) return;
        tilesFailed = true;
        element.classList.add("no-tiles");
        note.textContent = "Map tiles could not load (offline?). Pins still show where you, your job and providers are. " +
          note.textContent;
      })
      .addTo(map);
    const me = L.marker(center, { icon: pin("blue", "You"), title: "You", keyboard: false }).addTo(map);
    const providerLayer = L.layerGroup().addTo(map);
    let radiusCircle = null;
    let jobMarker = null;
    let liveMarker = null;

    return {
      setMe(lat, lng) {
        me.setLatLng([lat, lng]);
        map.panTo([lat, lng]);
      },
      /* Providers at their real distance; the bearing is made up from the id, as positions are private. */
      setProviders(providers, lat, lng, radiusKm) {
        providerLayer.clearLayers();
        if (radiusCircle) radiusCircle.remove();
        radiusCircle = L.circle([lat, lng], { radius: radiusKm * 1000, weight: 1, fillOpacity: 0.04 }).addTo(map);
        providers.forEach(function (provider, index) {
          if (provider.distance_km === null || provider.distance_km === undefined) return;
          const at = offset(lat, lng, provider.distance_km, (provider.id * GOLDEN_ANGLE) % 360);
          L.marker(at, { icon: pin("green", String(index + 1)), title: provider.name })
            .bindPopup(provider.name + " · " + provider.distance_km + " km · ★ " + (provider.rating || "new"))
            .addTo(providerLayer);
        });
        map.fitBounds(radiusCircle.getBounds(), { padding: [10, 10] });
      },
      setJob(lat, lng) {
        if (jobMarker) jobMarker.remove();
        jobMarker = lat === null ? null : L.marker([lat, lng], { icon: pin("orange", "Job"), title: "Job address" }).addTo(map);
      },
      setProviderLive(lat, lng, label) {
        if (lat === null) {
          if (liveMarker) liveMarker.remove();
          liveMarker = null;
          return;
        }
        if (!liveMarker) {
          liveMarker = L.marker([lat, lng], { icon: pin("red", "🛠"), title: label }).addTo(map);
        }
        liveMarker.setLatLng([lat, lng]).bindPopup(label);
        const bounds = L.latLngBounds([[lat, lng]]);
        if (jobMarker) bounds.extend(jobMarker.getLatLng());
        map.fitBounds(bounds.pad(0.5), { maxZoom: 15 });
      },
      onClick(handler) {
        map.on("click", function (clicked) {
          handler(clicked.latlng.lat, clicked.latlng.lng);
        });
      },
    };
  }

  window.DispatchMap = { create: create };
})();
