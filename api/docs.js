"use strict";
// docs.js starts Swagger UI (swagger-ui-bundle.js, served next to it) on amrd's API
// description. It is a file rather than an inline script so that the page's
// Content-Security-Policy can allow scripts from this origin only.
(function () {
  // The description sits next to this page: /v1/docs -> /v1/schema (also behind a path
  // prefix).
  const m = location.pathname.match(/^(.*)\/docs\/?$/);
  const schemaURL = (m ? m[1] : "/v1") + "/schema";
  window.ui = SwaggerUIBundle({
    url: schemaURL,
    dom_id: "#swagger-ui",
    presets: [SwaggerUIBundle.presets.apis],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl],
    layout: "BaseLayout", // no top bar: this page shows this server's description only
    deepLinking: true,
    // Swagger UI sends the document to validator.swagger.io by default.
    validatorUrl: null,
    filter: true,
    docExpansion: "list",
    displayRequestDuration: true,
    // Credentials entered in "Authorize" stay in this tab's memory, never in storage.
    persistAuthorization: false,
  });
})();
